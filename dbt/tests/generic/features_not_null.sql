{#- Fails for every row where a feature that is never censored is NULL. The list is the dataset's
    (var not_null_features, from the feature registry), so one test serves every dataset. -#}
{% test features_not_null(model) %}
select *
from {{ model }}
where false
{%- for column in var('not_null_features') %}
    or {{ column }} is null
{%- endfor %}
{% endtest %}
