-- Tiles for "distinct products bought in [T - w, T)", which do not add up across daily tiles.
-- A product counts once at T when its last purchase day before T falls in the window. For each
-- (customer, product, purchase day) the purchase stays "the last one before T" for every T up
-- to its next purchase day of that product; T being a month start, that is T <= the month start
-- of the next purchase (still_last_until). Rows are then counted per (customer, day,
-- still_last_until), so this table is about as small as the daily tiles and
-- distinct_products_w(T) = sum(n_products) over tile_date in [T - w, T) and T <= still_last_until.
with purchases as (
    select
        customer_id,
        event_date,
        lead(event_date) over (
            partition by customer_id, product_id order by event_date
        ) as next_date
    from {{ ref('stg_events') }}
    where event_type = 'purchase' and product_id is not null
),

last_purchases_before_a_month_start as (
    -- Keep a (customer, product, day) line only if the product's next purchase falls in a later
    -- month: otherwise it is never the last purchase before any month start T. This also keeps
    -- exactly one line per (customer, product, day).
    select
        customer_id,
        event_date,
        coalesce(
            cast({{ dbt.date_trunc('month', 'next_date') }} as date), cast('9999-12-31' as date)
        ) as still_last_until
    from purchases
    where next_date is null
        or cast({{ dbt.date_trunc('month', 'next_date') }} as date) > event_date
)

select
    customer_id,
    event_date as tile_date,
    still_last_until,
    cast(count(*) as integer) as n_products
from last_purchases_before_a_month_start
group by customer_id, event_date, still_last_until
