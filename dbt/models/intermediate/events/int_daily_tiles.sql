-- Daily tiles: one row per customer per day with any event, holding additive partial aggregates.
-- Window features at T are sums of tiles with tile_date in [T - w, T): exact because T is midnight.
-- Rows are first rolled up per order and day, so distinct orders per day are a plain count
-- instead of a COUNT(DISTINCT) over every row (an order with rows on two days counts on each).
-- Incremental: a day's tiles depend on that day's events only, so exactly the changed days are
-- rebuilt (macros/incremental_days.sql).
-- depends_on: {{ ref('int_event_days') }}
{{ config(
    pre_hook="{{ clear_rebuilt_days('tile_date', 0, 'n_events') }}",
    **incremental_days_config('tile_date'),
) }}
with orders as (
    select
        customer_id,
        event_date,
        order_id,
        event_type = 'purchase' as is_purchase,
        count(*) as n_lines,
        sum(amount) as amount
    from {{ ref('stg_events') }}
    {%- if is_incremental() %}
    where event_date in ({{ rebuilt_days(0) }})
    {%- endif %}
    group by customer_id, event_date, order_id, event_type = 'purchase'
)

select {{ one_file_per_day('tile_date') }}
    customer_id,
    event_date as tile_date,
    -- narrow types keep the window sums downstream on 64-bit arithmetic
    cast(sum(case when is_purchase then 1 else 0 end) as integer) as n_orders,
    cast(sum(case when is_purchase then n_lines else 0 end) as integer) as n_lines,
    cast(sum(case when is_purchase then amount else 0 end) as {{ var('column_types')['amount'] }})
        as revenue,
    cast(sum(case when is_purchase then 0 else n_lines end) as integer) as n_returns,
    cast(sum(case when is_purchase then 0 else -amount end) as {{ var('column_types')['amount'] }})
        as return_value
from orders
group by customer_id, event_date
