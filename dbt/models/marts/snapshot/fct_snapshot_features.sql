-- Snapshot feature group: one row per customer at the dataset's fixed snapshot date. Each
-- feature is a declared column or a declared SQL expression over the columns (portable SQL: it
-- runs on DuckDB and Spark). Declarations and docs live in the dataset's defs.yaml.
with customers as (
    select * from {{ ref('stg_snapshot') }}
)

select
    customer_id,
    cast('{{ var("snapshot_date") }}' as date) as observation_date,
    {%- for feature in var('snapshot_features') %}
    {{ feature['sql'] }} as {{ feature['name'] }},
    {%- endfor %}
    churned
from customers
