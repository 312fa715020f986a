{#- A longer window never holds less than a shorter one: fails for every row where orders or
    distinct products shrink from one of the dataset's windows to the next. -#}
{% test windows_are_nested(model) %}
{%- set windows = var('windows') %}
{%- set all_windows = windows + var('long_windows') %}
select *
from {{ model }}
where false
{%- for i in range(windows | length - 1) %}
    or distinct_products_{{ windows[i] }}d > distinct_products_{{ windows[i + 1] }}d
{%- endfor %}
{%- for i in range(all_windows | length - 1) %}
    or orders_{{ all_windows[i] }}d > orders_{{ all_windows[i + 1] }}d
{%- endfor %}
{% endtest %}
