-- Training spine: (customer, T) pairs whose label has matured. Features join on exactly T.
select
    customer_id,
    observation_date,
    churned
from {{ ref('fct_labels') }}
where churned is not null
