-- Features as of the newest observation date, one row per customer with history: scoring input.
-- A view on DuckDB; on Spark a table, because marts come back from the lake as parquet files.
{{ config(materialized='table' if target.type == 'spark' else 'view') }}
select *
from {{ ref('fct_features') }}
where observation_date = (select max(observation_date) from {{ ref('fct_features') }})
