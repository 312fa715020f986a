{#- Date helpers. Models stay portable; adapter-specific syntax lives only here (dispatch). -#}

{#- A date shifted by a whole number of days, still typed DATE. -#}
{% macro add_days(date_expr, days) -%}
    {{ return(adapter.dispatch('add_days', 'churn_features')(date_expr, days)) }}
{%- endmacro %}

{% macro default__add_days(date_expr, days) -%}
    cast({{ dbt.dateadd('day', days, date_expr) }} as date)
{%- endmacro %}

{% macro duckdb__add_days(date_expr, days) -%}
    cast(({{ date_expr }}) + cast({{ days }} as integer) as date)
{%- endmacro %}

{#- dbt-spark's dateadd goes through unix timestamps and back; date_add stays a DATE. -#}
{% macro spark__add_days(date_expr, days) -%}
    date_add({{ date_expr }}, {{ days }})
{%- endmacro %}

{#- Whole days from start_expr to end_expr (both DATE). -#}
{% macro days_between(start_expr, end_expr) -%}
    {{ return(adapter.dispatch('days_between', 'churn_features')(start_expr, end_expr)) }}
{%- endmacro %}

{% macro default__days_between(start_expr, end_expr) -%}
    {{ dbt.datediff(start_expr, end_expr, 'day') }}
{%- endmacro %}

{#- dbt-spark's datediff fails on NULL (assert_not_null); a NULL date (lag() on a first row)
    must give NULL, as everywhere else. -#}
{% macro spark__days_between(start_expr, end_expr) -%}
    datediff({{ end_expr }}, {{ start_expr }})
{%- endmacro %}

{#- One row per first-of-month date in [start, end] (both 'YYYY-MM-DD' strings), column observation_date. -#}
{% macro month_starts(start, end) -%}
    {{ return(adapter.dispatch('month_starts', 'churn_features')(start, end)) }}
{%- endmacro %}

{% macro default__month_starts(start, end) -%}
    with recursive months (observation_date) as (
        select cast('{{ start }}' as date)
        union all
        select cast({{ dbt.dateadd('month', 1, 'observation_date') }} as date)
        from months
        where observation_date < cast('{{ end }}' as date)
    )
    select observation_date from months where observation_date <= cast('{{ end }}' as date)
{%- endmacro %}

{% macro duckdb__month_starts(start, end) -%}
    select cast(range as date) as observation_date
    from range(cast('{{ start }}' as date), cast('{{ end }}' as date) + interval 1 day, interval 1 month)
{%- endmacro %}

{#- Spark 4.0 has no recursive CTEs; sequence() over dates steps by calendar months. -#}
{% macro spark__month_starts(start, end) -%}
    select explode(
        sequence(cast('{{ start }}' as date), cast('{{ end }}' as date), interval 1 month)
    ) as observation_date
{%- endmacro %}

{#- Median as an aggregate. -#}
{% macro median(expr) -%}
    {{ return(adapter.dispatch('median', 'churn_features')(expr)) }}
{%- endmacro %}

{% macro default__median(expr) -%}
    percentile_cont(0.5) within group (order by {{ expr }})
{%- endmacro %}

{% macro duckdb__median(expr) -%}
    median({{ expr }})
{%- endmacro %}

{#- A window [T - days, T) that starts before the first day of the data is unknown, not empty:
    the value, or NULL when the window is left-censored. -#}
{% macro known_since(observation_expr, days, first_day_expr, value_expr) -%}
    case when {{ add_days(observation_expr, -days) }} < {{ first_day_expr }} then null
        else {{ value_expr }} end
{%- endmacro %}
