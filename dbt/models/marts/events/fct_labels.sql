-- Churn label for every customer active at T (a purchase in [T - active window, T)):
-- churned = 1 when there is no purchase in [T, T + horizon), 0 otherwise, NULL (immature) when
-- the horizon ends after the last event in the data, because then "no purchase" is not yet known.
with data_end as (
    select max(event_ts) as last_event_ts from {{ source('raw', 'events') }}
),

active as (
    select
        customer_id,
        observation_date,
        last_purchase_date,
        next_purchase_date,
        {{ add_days('observation_date', var('label_horizon_days')) }} as label_horizon_end
    from {{ ref('int_customer_asof') }}
    where last_purchase_date >= {{ add_days('observation_date', -var('active_window_days')) }}
)

select
    active.customer_id,
    active.observation_date,
    active.label_horizon_end,
    active.next_purchase_date,
    cast(active.label_horizon_end as timestamp) <= data_end.last_event_ts as is_mature,
    case
        when cast(active.label_horizon_end as timestamp) > data_end.last_event_ts then null
        when active.next_purchase_date < active.label_horizon_end then 0
        else 1
    end as churned
from active
cross join data_end
