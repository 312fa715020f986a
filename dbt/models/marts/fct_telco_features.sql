-- Telco feature group: one row per customer at the fixed snapshot date (var telco_snapshot_date,
-- the dataset has no timestamps). Static features plus the original categorical columns, which
-- training one-hot encodes. Every column is declared in churn_assets/lib/features_registry.py.
{%- set addons = ['online_security', 'online_backup', 'device_protection', 'tech_support',
                  'streaming_tv', 'streaming_movies'] %}
with customers as (
    select * from {{ ref('stg_telco_customers') }}
),

contract_medians as (
    select
        contract,
        {{ median('monthly_charges') }} as median_monthly_charges
    from customers
    group by contract
)

select
    customers.customer_id,
    cast('{{ var("telco_snapshot_date") }}' as date) as observation_date,
    customers.tenure,
    case
        when customers.tenure <= 12 then '00-12'
        when customers.tenure <= 24 then '13-24'
        when customers.tenure <= 48 then '25-48'
        else '49-72'
    end as tenure_bucket,
    customers.monthly_charges,
    customers.total_charges,
    -- New customers (tenure 0, no bill yet) are charged their monthly rate per month.
    case
        when customers.tenure > 0 then customers.total_charges / customers.tenure
        else customers.monthly_charges
    end as charge_per_tenure_month,
    customers.monthly_charges / contract_medians.median_monthly_charges
        as monthly_charges_vs_contract_median,
    {%- for addon in addons %}
    {{ '(' if loop.first else '+ ' }}case when customers.{{ addon }} = 'Yes' then 1 else 0 end
    {%- endfor %}) as n_addon_services,
    (case when customers.streaming_tv = 'Yes' then 1 else 0 end
        + case when customers.streaming_movies = 'Yes' then 1 else 0 end) as n_streaming_services,
    (case when customers.online_security = 'Yes' then 1 else 0 end
        + case when customers.online_backup = 'Yes' then 1 else 0 end
        + case when customers.device_protection = 'Yes' then 1 else 0 end
        + case when customers.tech_support = 'Yes' then 1 else 0 end) as n_security_support_services,
    case
        when customers.contract = 'Two year' then 24
        when customers.contract = 'One year' then 12
        else 1
    end as contract_months,
    case when customers.contract = 'Month-to-month' then 1 else 0 end as is_month_to_month,
    case when customers.payment_method like '%(automatic)' then 1 else 0 end as is_automatic_payment,
    case when customers.payment_method = 'Electronic check' then 1 else 0 end
        as is_electronic_check,
    case when customers.paperless_billing = 'Yes' then 1 else 0 end as is_paperless_billing,
    customers.senior_citizen,
    -- log terms and their product: a linear model sees the diminishing effect of tenure and
    -- the tenure x charge interaction (monthly charges are always > 0)
    ln(customers.tenure + 1.0) as log_tenure,
    ln(customers.monthly_charges) as log_monthly_charges,
    ln(customers.tenure + 1.0) * ln(customers.monthly_charges) as log_tenure_x_log_monthly_charges,
    customers.gender,
    customers.partner,
    customers.dependents,
    customers.phone_service,
    customers.multiple_lines,
    customers.internet_service,
    customers.online_security,
    customers.online_backup,
    customers.device_protection,
    customers.tech_support,
    customers.streaming_tv,
    customers.streaming_movies,
    customers.contract,
    customers.paperless_billing,
    customers.payment_method,
    customers.churned
from customers
inner join contract_medians on contract_medians.contract = customers.contract
