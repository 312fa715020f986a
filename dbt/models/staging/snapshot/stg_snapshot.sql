-- The customer snapshot, typed by the loader from the declaration; the label becomes 0/1.
-- Every declared column is carried (features may be expressions over any of them).
select
    customer_id,
    {%- for column in var('snapshot_columns') %}
    {{ column }},
    {%- endfor %}
    case when churn_label then 1 else 0 end as churned
from {{ source('raw', 'customers') }}
