-- How many raw rows stg_events drops, and why (one row per reason, zero rows included): no
-- customer, each exclusion the dataset declares, zero quantity.
{%- set reasons = ['missing_customer'] + var('exclusion_reasons') + ['zero_quantity'] %}
with reasons as (
    select
        case
            when customer_id is null then 'missing_customer'
            when exclude_reason is not null then exclude_reason
            when coalesce(quantity, 1) = 0 then 'zero_quantity'
        end as reason
    from {{ source('raw', 'events') }}
),

all_reasons as (
    {%- for reason in reasons %}
    {{ 'union all ' if not loop.first }}select '{{ reason }}' as reason
    {%- endfor %}
)

select
    all_reasons.reason,
    count(reasons.reason) as n_rows
from all_reasons
left join reasons on reasons.reason = all_reasons.reason
group by all_reasons.reason
