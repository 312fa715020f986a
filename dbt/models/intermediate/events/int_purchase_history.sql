-- Purchase days with running lifetime aggregates, one row per customer per purchase day.
-- The row that holds at T is the last purchase day before T (int_customer_asof); its running
-- columns are the lifetime features. A row depends on its own day and earlier ones only.
-- Incremental: every day on or after the first changed day is recomputed, continuing from each
-- customer's last row before that day (the seed), so a new month costs one month of rows.
-- depends_on: {{ ref('int_event_days') }}
{{ config(
    pre_hook="{{ clear_rebuilt_days('tile_date', none, 'n_purchase_lines') }}",
    **incremental_days_config('tile_date'),
) }}
{%- set first_day = first_rebuilt_day() %}
with purchase_days as (
    select
        customer_id,
        tile_date,
        n_orders,
        n_lines,
        revenue
    from {{ ref('int_daily_tiles') }}
    where n_orders > 0
    {%- if is_incremental() %}
        and tile_date >= {{ first_day }}
    {%- endif %}
),

{%- if is_incremental() %}

seeds as (
    select previous.*
    from {{ this }} as previous
    inner join (
        select customer_id, max(tile_date) as tile_date
        from {{ this }}
        where tile_date < {{ first_day }}
        group by customer_id
    ) as last_day
        on last_day.customer_id = previous.customer_id and last_day.tile_date = previous.tile_date
),
{%- endif %}

-- What each row adds to the running totals: one purchase day, or a seed's totals so far.
steps as (
    select
        customer_id,
        tile_date,
        false as is_seed,
        1 as purchase_days,
        n_orders,
        n_lines,
        revenue,
        tile_date as first_date,
        0 as max_gap,
        0 as lapses,
        0.0 as gap_sq
    from purchase_days
    {%- if is_incremental() %}
    union all
    select
        customer_id,
        tile_date,
        true as is_seed,
        cum_purchase_days,
        cum_orders,
        cum_lines,
        cum_revenue,
        first_purchase_date,
        cum_max_gap,
        cum_lapses,
        cum_gap_sq
    from seeds
    {%- endif %}
),

with_gaps as (
    select
        *,
        {{ days_between(
            'lag(tile_date) over (partition by customer_id order by tile_date)', 'tile_date'
        ) }} as gap_days
    from steps
),

running_totals as (
    select
        customer_id,
        tile_date,
        is_seed,
        min(first_date) over running as first_purchase_date,
        sum(purchase_days) over running as cum_purchase_days,
        sum(n_orders) over running as cum_orders,
        sum(n_lines) over running as cum_lines,
        sum(revenue) over running as cum_revenue,
        -- longest gap so far and the number of gaps longer than the active window (lapses): 0
        -- before any gap
        max(greatest(max_gap, coalesce(gap_days, 0))) over running as cum_max_gap,
        sum(lapses + case when gap_days > {{ var("active_window_days") }} then 1 else 0 end)
            over running as cum_lapses,
        sum(gap_sq + coalesce(cast(gap_days * gap_days as double), 0)) over running as cum_gap_sq
    from with_gaps
    window running as (
        partition by customer_id order by tile_date rows between unbounded preceding and current row
    )
)

select {{ one_file_per_day('tile_date') }}
    customer_id,
    tile_date,
    first_purchase_date,
    cum_purchase_days,
    cum_orders,
    cum_lines,
    cum_revenue,
    cum_max_gap,
    cum_lapses,
    cum_gap_sq
from running_totals
where not is_seed
