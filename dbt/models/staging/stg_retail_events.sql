-- Retail invoice lines as typed customer events. One row per raw line that has a customer and a
-- meaning for churn: purchase (quantity > 0), return (quantity < 0) or cancellation ("C" invoice).
-- Lines without a customer, bad-debt adjustments ("A") and zero quantities are dropped here and
-- counted in stg_retail_dropped_lines.
with lines as (
    select
        event_id,
        invoice,
        stock_code,
        quantity,
        invoice_ts,
        unit_price,
        customer_id,
        country
    from {{ source('raw', 'retail_transactions') }}
)

select
    event_id,
    customer_id,
    invoice,
    stock_code,
    invoice_ts as event_ts,
    cast(invoice_ts as date) as event_date,
    case
        when invoice like 'C%' then 'cancellation'
        when quantity < 0 then 'return'
        else 'purchase'
    end as event_type,
    quantity,
    unit_price,
    -- Exact decimal (prices have at most 3 decimals): sums are then order-independent, so
    -- parallel aggregation gives bit-identical features and reproducible training-set versions.
    cast(quantity * unit_price as numeric(18, 3)) as amount,
    country
from lines
where customer_id is not null
    and invoice not like 'A%'
    and quantity <> 0
