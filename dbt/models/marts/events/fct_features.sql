-- Event feature group at each (customer, T) with purchase history before T. Every column is
-- declared in churn_assets/lib/features_registry.py (its catalogue is shown on the Dagster asset).
-- Windows [T - w, T) for the dataset's windows are sums over daily tiles joined to the
-- observation dates, never a range join over events. An empty window is 0; a window that reaches
-- back before the first day of the data is unknown, not empty: NULL (left-censored).
-- Long windows carry only orders and revenue, from the same tile join.
{%- set windows = var('windows') %}
{%- set long_windows = var('long_windows') %}
{%- set horizon = var('label_horizon_days') %}
{%- set widest = (windows + long_windows) | max %}
{%- set w0, w1 = windows[0], windows[1] %}
{%- set has_year = 365 in long_windows %}
{%- set long_measures = {'orders': 'n_orders', 'revenue': 'revenue'} %}
{#- feature prefix -> (tile column, SQL type of the feature) -#}
{%- set tile_measures = {
    'orders': ('n_orders', 'integer'),
    'lines': ('n_lines', 'integer'),
    'revenue': ('revenue', 'double'),
    'returns': ('n_returns', 'integer'),
    'return_value': ('return_value', 'double'),
} %}
with data_start as (
    select cast(min(event_ts) as date) as first_day from {{ source('raw', 'events') }}
),

observations as (
    select
        observation_date,
        {%- for w in windows + long_windows %}
        {{ add_days('observation_date', -w) }} as window_start_{{ w }}d,
        {%- endfor %}
        -- last year's label horizon: [T - 365d, T - 365d + horizon)
        {{ add_days('observation_date', horizon - 365) }} as prior_year_horizon_end
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
        {%- for w in long_windows %}
        {%- for feature, column in long_measures.items() %}
        sum(case when tiles.tile_date >= observations.window_start_{{ w }}d
            then tiles.{{ column }} else 0 end) as {{ feature }}_{{ w }}d,
        {%- endfor %}
        {%- endfor %}
        count(distinct case when tiles.n_orders > 0
            then {{ dbt.date_trunc('month', 'tiles.tile_date') }} end) as active_months_{{ widest }}d,
        sum(case when tiles.tile_date < observations.prior_year_horizon_end
            {%- if has_year %} and tiles.tile_date >= observations.window_start_365d{% endif %}
            then tiles.n_orders else 0 end) as orders_prior_year_horizon
    from {{ ref('int_daily_tiles') }} as tiles
    inner join observations
        on tiles.tile_date >= observations.window_start_{{ widest }}d
        and tiles.tile_date < observations.observation_date
    group by tiles.customer_id, observations.observation_date
),

product_counts as (
    select
        products.customer_id,
        observations.observation_date,
        {%- for w in windows %}
        sum(case when products.tile_date >= observations.window_start_{{ w }}d
            and (products.previous_purchase_date is null
                or products.previous_purchase_date < observations.window_start_{{ w }}d)
            then products.n_products else 0 end) as distinct_products_{{ w }}d{{ ',' if not loop.last }}
        {%- endfor %}
    from {{ ref('int_product_days') }} as products
    inner join observations
        on products.tile_date >= observations.window_start_{{ windows[-1] }}d
        and products.tile_date < observations.observation_date
    group by products.customer_id, observations.observation_date
),

joined as (
    select
        spine.customer_id,
        spine.observation_date,
        {%- for w in windows %}
        {%- for feature, (_, sql_type) in tile_measures.items() %}
        cast({{ known_since('spine.observation_date', w, 'data_start.first_day',
            'coalesce(window_sums.' ~ feature ~ '_' ~ w ~ 'd, 0)') }} as {{ sql_type }}) as {{ feature }}_{{ w }}d,
        {%- endfor %}
        cast({{ known_since('spine.observation_date', w, 'data_start.first_day',
            'coalesce(product_counts.distinct_products_' ~ w ~ 'd, 0)') }} as integer)
            as distinct_products_{{ w }}d,
        {%- endfor %}
        cast({{ days_between('spine.last_purchase_date', 'spine.observation_date') }} as integer)
            as recency_days,
        cast({{ days_between('spine.first_purchase_date', 'spine.observation_date') }} as integer)
            as tenure_days,
        cast(spine.cum_orders as integer) as lifetime_orders,
        cast(spine.cum_revenue as double) as lifetime_revenue,
        {%- for w in long_windows %}
        {%- for feature, column in long_measures.items() %}
        cast({{ known_since('spine.observation_date', w, 'data_start.first_day',
            'coalesce(window_sums.' ~ feature ~ '_' ~ w ~ 'd, 0)') }} as {{ tile_measures[feature][1] }})
            as {{ feature }}_{{ w }}d,
        {%- endfor %}
        {%- endfor %}
        cast({{ known_since('spine.observation_date', widest, 'data_start.first_day',
            'coalesce(window_sums.active_months_' ~ widest ~ 'd, 0)') }} as integer)
            as active_months_{{ widest }}d,
        cast({{ known_since('spine.observation_date', 365, 'data_start.first_day',
            'coalesce(window_sums.orders_prior_year_horizon, 0)') }} as integer)
            as orders_prior_year_horizon,
        cast(extract(month from spine.observation_date) as integer) as observation_month,
        cast(spine.cum_max_gap as integer) as max_gap_days,
        cast(spine.cum_lapses as integer) as n_lapses,
        cast(spine.cum_lines as double) as lifetime_lines,
        spine.cum_purchase_days - 1 as n_gaps,
        cast({{ days_between('spine.first_purchase_date', 'spine.last_purchase_date') }} as double)
            as gap_sum,
        spine.cum_gap_sq
    from {{ ref('int_customer_asof') }} as spine
    cross join data_start
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
    lifetime_orders,
    lifetime_revenue,
    -- Laplace-smoothed ratios: defined (never NULL) when the previous window was empty. In double
    -- precision on every engine (Spark would keep integer + 1.0 a rounded decimal).
    (cast(orders_{{ w0 }}d as double) + 1) / (orders_{{ w1 }}d - orders_{{ w0 }}d + 1)
        as orders_trend_{{ w0 }}d,
    (revenue_{{ w0 }}d + 1) / (revenue_{{ w1 }}d - revenue_{{ w0 }}d + 1) as revenue_trend_{{ w0 }}d,
    -- Gaps between consecutive purchase days. With a single purchase day there is no gap yet:
    -- the mean falls back to the tenure (a lower bound on the first gap) and the std to 0.
    case when n_gaps > 0 then gap_sum / n_gaps else cast(tenure_days as double) end
        as interpurchase_mean_days,
    case
        when n_gaps > 0
            then sqrt(greatest(cum_gap_sq / n_gaps - (gap_sum / n_gaps) * (gap_sum / n_gaps), 0.0))
        else 0.0
    end as interpurchase_std_days,
    {%- for w in long_windows %}
    {%- for feature in long_measures %}
    {{ feature }}_{{ w }}d,
    {%- endfor %}
    {%- endfor %}
    active_months_{{ widest }}d,
    {%- if has_year %}
    orders_prior_year_horizon,
    {%- endif %}
    observation_month,
    max_gap_days,
    n_lapses as n_lapses_{{ var('active_window_days') }}d,
    -- recency in units of the usual gap (the mean gap is >= 1 day: never a division by 0)
    recency_days / (case when n_gaps > 0 then gap_sum / n_gaps
        else cast(tenure_days as double) end) as recency_to_mean_gap,
    lifetime_revenue / lifetime_orders as avg_order_value,
    lifetime_lines / lifetime_orders as avg_lines_per_order,
    lifetime_revenue / lifetime_lines as avg_line_value
from joined
