-- Features as of the newest observation date, one row per customer with history: scoring input.
{{ config(materialized='view') }}
select *
from {{ ref('fct_features') }}
where observation_date = (select max(observation_date) from {{ ref('fct_features') }})
