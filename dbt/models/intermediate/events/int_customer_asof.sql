-- The spine of the feature table: every (customer, T) where the customer bought before T, with
-- the as-of purchase-history row (last purchase day before T). Portable interval join on the
-- small purchase-history table instead of a range join over events. The next purchase day (for
-- the label) is looked up here rather than stored in the history, whose rows then depend on the
-- past only and can be built incrementally.
with observations as (
    select observation_date from {{ ref('int_observation_dates') }}
),

history as (
    select
        *,
        lead(tile_date) over (partition by customer_id order by tile_date) as next_purchase_date
    from {{ ref('int_purchase_history') }}
)

select
    history.customer_id,
    observations.observation_date,
    history.tile_date as last_purchase_date,
    history.next_purchase_date,
    history.first_purchase_date,
    history.cum_purchase_days,
    history.cum_orders,
    history.cum_lines,
    history.cum_revenue,
    history.cum_gap_sq,
    history.cum_max_gap,
    history.cum_lapses
from history
inner join observations
    on history.tile_date < observations.observation_date
    and observations.observation_date
    <= coalesce(history.next_purchase_date, cast('9999-12-31' as date))
