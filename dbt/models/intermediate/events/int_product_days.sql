-- Tiles for "distinct products bought in [T - w, T)", which do not add up across daily tiles.
-- A product counts once in a window: on its first purchase day inside it, i.e. a purchase day d
-- in [T - w, T) whose previous purchase of the same product is before T - w (or absent). Rows
-- are counted per (customer, day, previous purchase day), so
-- distinct_products_w(T) = sum(n_products) over tile_date in [T - w, T) and
-- previous_purchase_date is NULL or before T - w. A previous purchase before the widest window
-- never matters and is stored as NULL, which keeps this table about as small as the daily tiles.
-- The sort of purchase lines by (customer, product, day) is the dominant cost of the build.
-- A row depends on purchases of at most the widest window before its day only: incremental
-- runs rebuild the changed days and the widest window after each (macros/incremental_days.sql).
{%- set widest = var('windows') | max %}
-- depends_on: {{ ref('int_event_days') }}
{{ config(
    pre_hook="{{ clear_rebuilt_days('tile_date', " ~ widest ~ ", 'n_product_lines') }}",
    **incremental_days_config('tile_date'),
) }}
with product_days as (
    select distinct
        customer_id,
        product_id,
        event_date
    from {{ ref('stg_events') }}
    where event_type = 'purchase' and product_id is not null
    {%- if is_incremental() %}
        and event_date >= {{ add_days(first_rebuilt_day(), -widest) }}
    {%- endif %}
),

with_previous as (
    select
        customer_id,
        event_date,
        lag(event_date) over (
            partition by customer_id, product_id order by event_date
        ) as previous_date
    from product_days
)

select {{ one_file_per_day('tile_date') }}
    customer_id,
    event_date as tile_date,
    case
        when previous_date >= {{ add_days('event_date', -widest) }} then previous_date
    end as previous_purchase_date,
    cast(count(*) as integer) as n_products
from with_previous
{%- if is_incremental() %}
where event_date in ({{ rebuilt_days(widest) }})
{%- endif %}
group by
    customer_id,
    event_date,
    case when previous_date >= {{ add_days('event_date', -widest) }} then previous_date end
