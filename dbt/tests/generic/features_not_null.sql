{#- Fails for every row where a declared feature is NULL. The feature list is the dataset's
    (var feature_columns, from the feature registry), so one test serves every dataset. -#}
{% test features_not_null(model) %}
select *
from {{ model }}
where false
{%- for column in var('feature_columns') %}
    or {{ column }} is null
{%- endfor %}
{% endtest %}
