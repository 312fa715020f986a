-- Purchase days with running lifetime aggregates, one row per customer per purchase day.
-- The row that holds at T is the last purchase day before T: tile_date < T <= next_purchase_date
-- (an as-of join written as an interval join, so it stays portable SQL). Its running columns are
-- the lifetime features; its next_purchase_date is the first purchase on or after T (label only).
with purchase_days as (
    select
        customer_id,
        tile_date,
        n_orders,
        n_lines,
        revenue
    from {{ ref('int_daily_tiles') }}
    where n_orders > 0
),

with_gaps as (
    select
        customer_id,
        tile_date,
        n_orders,
        n_lines,
        revenue,
        {{ days_between(
            'lag(tile_date) over (partition by customer_id order by tile_date)', 'tile_date'
        ) }} as gap_days,
        lead(tile_date) over (partition by customer_id order by tile_date) as next_purchase_date
    from purchase_days
)

select
    customer_id,
    tile_date,
    next_purchase_date,
    min(tile_date) over (
        partition by customer_id order by tile_date rows between unbounded preceding and current row
    ) as first_purchase_date,
    count(*) over (
        partition by customer_id order by tile_date rows between unbounded preceding and current row
    ) as cum_purchase_days,
    sum(n_orders) over (
        partition by customer_id order by tile_date rows between unbounded preceding and current row
    ) as cum_orders,
    sum(n_lines) over (
        partition by customer_id order by tile_date rows between unbounded preceding and current row
    ) as cum_lines,
    sum(revenue) over (
        partition by customer_id order by tile_date rows between unbounded preceding and current row
    ) as cum_revenue,
    -- longest gap so far and the number of gaps longer than the active window (lapses): 0 before any gap
    coalesce(max(gap_days) over (
        partition by customer_id order by tile_date rows between unbounded preceding and current row
    ), 0) as cum_max_gap,
    sum(case when gap_days > {{ var("active_window_days") }} then 1 else 0 end) over (
        partition by customer_id order by tile_date rows between unbounded preceding and current row
    ) as cum_lapses,
    coalesce(sum(cast(gap_days * gap_days as double precision)) over (
        partition by customer_id order by tile_date rows between unbounded preceding and current row
    ), 0) as cum_gap_sq
from with_gaps
