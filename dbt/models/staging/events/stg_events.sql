-- The dataset's customer events, typed: purchase, return or cancellation (decided at load from
-- the dataset's declaration), amount as an exact decimal. Rows without a customer, rows the
-- declaration excludes (e.g. bad-debt adjustments) and zero quantities are dropped here and
-- counted per reason in stg_dropped_events.
select
    event_id,
    customer_id,
    order_id,
    product_id,
    event_ts,
    cast(event_ts as date) as event_date,
    event_type,
    quantity,
    -- Exact decimal (the contract bounds amounts so they fit): sums are then order-independent,
    -- so parallel aggregation gives bit-identical features and reproducible training-set versions.
    cast(amount as {{ var('column_types')['amount'] }}) as amount
from {{ source('raw', 'events') }}
where customer_id is not null
    and exclude_reason is null
    and coalesce(quantity, 1) <> 0
