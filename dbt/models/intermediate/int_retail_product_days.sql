-- Customer x product x purchase-day tiles, for "distinct products in [T - w, T)".
-- Distinct counts do not add up across daily tiles, so each row also carries the next day the
-- customer bought the same product: a product counts once at T in window w when its row is the
-- last purchase of that product before T (tile_date < T <= next_date) and tile_date >= T - w.
with product_days as (
    select distinct
        customer_id,
        stock_code,
        event_date as tile_date
    from {{ ref('stg_retail_events') }}
    where event_type = 'purchase'
)

select
    customer_id,
    stock_code,
    tile_date,
    lead(tile_date) over (partition by customer_id, stock_code order by tile_date) as next_date
from product_days
