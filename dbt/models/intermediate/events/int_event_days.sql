-- One row per day with customer events: how many, and a fingerprint of exactly which. The per-day
-- incremental tables compare it with the ledger of their last complete build (int_event_days_built,
-- see macros/incremental_days.sql) to find the days to rebuild. event_id is a content key, so a
-- corrected event changes its day's fingerprint.
select
    event_date,
    count(*) as n_events,
    sum(case when event_type = 'purchase' then 1 else 0 end) as n_purchase_lines,
    sum(case when event_type = 'purchase' and product_id is not null then 1 else 0 end)
        as n_product_lines,
    {{ fingerprint('event_id') }} as fingerprint,
    '{{ event_days_build_key() }}' as build_key
from {{ ref('stg_events') }}
group by event_date
