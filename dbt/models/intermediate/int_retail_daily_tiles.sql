-- Daily tiles: one row per customer per day with any event, holding additive partial aggregates.
-- Window features at T are sums of tiles with tile_date in [T - w, T): exact because T is midnight.
-- Distinct invoices per day add up across days because an invoice never spans two days.
select
    customer_id,
    event_date as tile_date,
    count(distinct case when event_type = 'purchase' then invoice end) as n_invoices,
    sum(case when event_type = 'purchase' then 1 else 0 end) as n_lines,
    sum(case when event_type = 'purchase' then amount else 0 end) as revenue,
    sum(case when event_type <> 'purchase' then 1 else 0 end) as n_returns,
    sum(case when event_type <> 'purchase' then -amount else 0 end) as return_value
from {{ ref('stg_retail_events') }}
group by customer_id, event_date
