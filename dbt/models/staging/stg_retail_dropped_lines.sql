-- How many raw lines stg_retail_events drops, and why (one row per reason, zero rows included).
with reasons as (
    select
        case
            when customer_id is null then 'missing_customer'
            when invoice like 'A%' then 'bad_debt_adjustment'
            when quantity = 0 then 'zero_quantity'
        end as reason
    from {{ source('raw', 'retail_transactions') }}
),

all_reasons as (
    select 'missing_customer' as reason
    union all select 'bad_debt_adjustment'
    union all select 'zero_quantity'
)

select
    all_reasons.reason,
    count(reasons.reason) as n_lines
from all_reasons
left join reasons on reasons.reason = all_reasons.reason
group by all_reasons.reason
