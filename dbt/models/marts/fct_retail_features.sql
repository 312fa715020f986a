-- Retail feature group at each (customer, T) with purchase history before T. Every column is
-- declared in churn_assets/lib/features_registry.py (and documented from it in fct_retail_features.yml).
-- Windows [T - w, T) for w in 30/60/90 are sums over daily tiles joined to the 22-ish observation
-- dates, never a range join over events. No feature is NULL: empty windows are 0.
{%- set windows = [30, 60, 90] %}
{#- feature prefix -> (tile column, SQL type of the feature) -#}
{%- set tile_measures = {
    'invoices': ('n_invoices', 'integer'),
    'lines': ('n_lines', 'integer'),
    'revenue': ('revenue', 'double precision'),
    'returns': ('n_returns', 'integer'),
    'return_value': ('return_value', 'double precision'),
} %}
with observations as (
    select
        observation_date,
        {%- for w in windows %}
        {{ add_days('observation_date', -w) }} as window_start_{{ w }}d{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('int_observation_dates') }}
),

window_sums as (
    select
        tiles.customer_id,
        observations.observation_date,
        {%- for w in windows %}
        {%- for feature, (column, _) in tile_measures.items() %}
        sum(case when tiles.tile_date >= observations.window_start_{{ w }}d
            then tiles.{{ column }} else 0 end) as {{ feature }}_{{ w }}d,
        {%- endfor %}
        {%- endfor %}
        count(*) as n_tiles
    from {{ ref('int_retail_daily_tiles') }} as tiles
    inner join observations
        on tiles.tile_date >= observations.window_start_90d
        and tiles.tile_date < observations.observation_date
    group by tiles.customer_id, observations.observation_date
),

product_counts as (
    select
        products.customer_id,
        observations.observation_date,
        {%- for w in windows %}
        sum(case when products.tile_date >= observations.window_start_{{ w }}d
            then products.n_products else 0 end) as distinct_products_{{ w }}d{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('int_retail_product_days') }} as products
    inner join observations
        on products.tile_date >= observations.window_start_90d
        and products.tile_date < observations.observation_date
        and observations.observation_date <= products.still_last_until
    group by products.customer_id, observations.observation_date
),

joined as (
    select
        spine.customer_id,
        spine.observation_date,
        {%- for w in windows %}
        {%- for feature, (_, sql_type) in tile_measures.items() %}
        cast(coalesce(window_sums.{{ feature }}_{{ w }}d, 0) as {{ sql_type }}) as {{ feature }}_{{ w }}d,
        {%- endfor %}
        cast(coalesce(product_counts.distinct_products_{{ w }}d, 0) as integer)
            as distinct_products_{{ w }}d,
        {%- endfor %}
        cast({{ days_between('spine.last_purchase_date', 'spine.observation_date') }} as integer)
            as recency_days,
        cast({{ days_between('spine.first_purchase_date', 'spine.observation_date') }} as integer)
            as tenure_days,
        cast(spine.cum_invoices as integer) as lifetime_invoices,
        cast(spine.cum_revenue as double precision) as lifetime_revenue,
        spine.cum_purchase_days - 1 as n_gaps,
        cast({{ days_between('spine.first_purchase_date', 'spine.last_purchase_date') }} as double precision)
            as gap_sum,
        spine.cum_gap_sq
    from {{ ref('int_retail_customer_asof') }} as spine
    left join window_sums
        on window_sums.customer_id = spine.customer_id
        and window_sums.observation_date = spine.observation_date
    left join product_counts
        on product_counts.customer_id = spine.customer_id
        and product_counts.observation_date = spine.observation_date
)

select
    customer_id,
    observation_date,
    {%- for w in windows %}
    {%- for feature in tile_measures %}
    {{ feature }}_{{ w }}d,
    {%- endfor %}
    distinct_products_{{ w }}d,
    {%- endfor %}
    recency_days,
    tenure_days,
    lifetime_invoices,
    lifetime_revenue,
    -- Laplace-smoothed ratios: defined (never NULL) when the previous 30 days were empty.
    (invoices_30d + 1.0) / (invoices_60d - invoices_30d + 1.0) as invoices_trend_30d,
    (revenue_30d + 1.0) / (revenue_60d - revenue_30d + 1.0) as revenue_trend_30d,
    -- Gaps between consecutive purchase days. With a single purchase day there is no gap yet:
    -- the mean falls back to the tenure (a lower bound on the first gap) and the std to 0.
    case when n_gaps > 0 then gap_sum / n_gaps else cast(tenure_days as double precision) end
        as interpurchase_mean_days,
    case
        when n_gaps > 0
            then sqrt(greatest(cum_gap_sq / n_gaps - (gap_sum / n_gaps) * (gap_sum / n_gaps), 0.0))
        else 0.0
    end as interpurchase_std_days
from joined
