-- Telco customers, typed: Yes/No flags become 0/1 integers beside the original categorical text
-- (kept for one-hot encoding in training), the label becomes an integer.
select
    customer_id,
    gender,
    senior_citizen,
    partner,
    dependents,
    phone_service,
    multiple_lines,
    internet_service,
    online_security,
    online_backup,
    device_protection,
    tech_support,
    streaming_tv,
    streaming_movies,
    contract,
    paperless_billing,
    payment_method,
    tenure,
    monthly_charges,
    total_charges,
    total_charges_imputed,
    case when churn then 1 else 0 end as churned
from {{ source('raw', 'telco_customers') }}
