{#- Incremental per-day tables, the same models on DuckDB and Spark.

    int_event_days fingerprints every day of events. At the end of a run in which every per-day
    model was built, record_built_days copies it to the ledger int_event_days_built: the state
    those tables now reflect. The next run compares the two, so a day is "changed" when its
    events differ from what the tables were built from (a new landing month, a late correction
    to an old day, a day that vanished), or when the knobs or SQL of the per-day models changed
    (build_key). A failed or partial run leaves the ledger alone: the next run rebuilds its days
    again (rebuilding a day is idempotent).

    Each per-day model rebuilds the days its rows depend on (rebuilt_days):
      reach 0     its changed days (daily tiles: a day's rows depend on that day only);
      reach N     days with a changed day at most N days before (distinct-product tiles: a row
                  looks back at the product's previous purchase within the widest window);
      reach none  every day on or after the first changed day (running lifetime totals).
    Rows of those days are replaced, every other row is kept: DuckDB deletes the days, then
    appends; Spark overwrites the day partitions it writes (insert_overwrite, dynamic) and clears
    the days left without any row. -#}

{%- macro fingerprint(expr) -%}
    {{ return(adapter.dispatch('fingerprint', 'churn_features')(expr)) }}
{%- endmacro %}

{#- Order-independent: a sum of 64-bit row hashes, exact (never wraps). -#}
{% macro duckdb__fingerprint(expr) -%}
    sum(cast(hash({{ expr }}) as hugeint))
{%- endmacro %}

{% macro spark__fingerprint(expr) -%}
    sum(cast(xxhash64({{ expr }}) as decimal(38, 0)))
{%- endmacro %}

{#- What the per-day tables are a function of besides the events: the knobs they read and
    their SQL. A change rebuilds every day. -#}
{% macro event_days_build_key() -%}
    {%- set parts = [var('windows') | string, var('active_window_days') | string,
                     var('column_types') | tojson] -%}
    {%- for node in (graph.nodes.values() if execute else []) | sort(attribute='name') -%}
        {%- if node.resource_type == 'model' and node.config.materialized == 'incremental' -%}
            {%- do parts.append(node.name ~ ':' ~ node.checksum.checksum) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ local_md5(parts | join('|')) }}
{%- endmacro %}

{#- The ledger next to int_event_days, or none before the first complete run. -#}
{% macro event_days_ledger(event_days) -%}
    {{ return(adapter.get_relation(
        database=event_days.database, schema=event_days.schema,
        identifier='int_event_days_built')) }}
{%- endmacro %}

{#- Days whose events (or build key) differ from the ledger, with both row counts. -#}
{% macro changed_days_sql() -%}
    {%- set event_days = ref('int_event_days') -%}
    {%- set ledger = event_days_ledger(event_days) if execute else none -%}
    select
        coalesce(current_days.event_date, built.event_date) as event_date,
        current_days.n_events,
        current_days.n_purchase_lines,
        current_days.n_product_lines,
        built.n_events as built_n_events,
        built.n_purchase_lines as built_n_purchase_lines,
        built.n_product_lines as built_n_product_lines
    from {{ event_days }} as current_days
    full outer join
    {%- if ledger is not none %}
        {{ ledger }} as built
    {%- else %}
        (select event_date, n_events, n_purchase_lines, n_product_lines, fingerprint, build_key
         from {{ event_days }} where 1 = 0) as built
    {%- endif %}
        on built.event_date = current_days.event_date
    where current_days.fingerprint is distinct from built.fingerprint
        or current_days.build_key is distinct from built.build_key
{%- endmacro %}

{#- The days a model rebuilds, as a one-column query (event_date); see the header for reach. -#}
{% macro rebuilt_days(reach) -%}
    {%- if reach == 0 -%}
        select event_date from ({{ changed_days_sql() }}) as changed
    {%- else -%}
        {%- set ledger = event_days_ledger(ref('int_event_days')) if execute else none -%}
        select known.event_date
        from (
            select event_date from {{ ref('int_event_days') }}
            {%- if ledger is not none %}
            union
            select event_date from {{ ledger }}
            {%- endif %}
        ) as known
        where exists (
            select 1 from ({{ changed_days_sql() }}) as changed
            where changed.event_date <= known.event_date
            {%- if reach is not none %}
                and known.event_date <= {{ add_days('changed.event_date', reach) }}
            {%- endif %}
        )
    {%- endif -%}
{%- endmacro %}

{#- The first day a model rebuilds (NULL when nothing changed), as a scalar subquery. -#}
{% macro first_rebuilt_day() -%}
    (select min(event_date) from ({{ changed_days_sql() }}) as changed)
{%- endmacro %}

{#- The config of a per-day incremental model, day column `day_column`. -#}
{% macro incremental_days_config(day_column) -%}
    {%- if target.type == 'spark' -%}
        {{ return({'materialized': 'incremental', 'incremental_strategy': 'insert_overwrite',
                   'partition_by': [day_column], 'file_format': 'parquet'}) }}
    {%- else -%}
        {{ return({'materialized': 'incremental', 'incremental_strategy': 'append'}) }}
    {%- endif -%}
{%- endmacro %}

{#- Pre-hook: make room for the rebuilt days. `count_column` is the int_event_days count that
    says whether a day has rows in this table at all. -#}
{% macro clear_rebuilt_days(day_column, reach, count_column) -%}
    {{ return(adapter.dispatch('clear_rebuilt_days', 'churn_features')(
        day_column, reach, count_column)) }}
{%- endmacro %}

{% macro default__clear_rebuilt_days(day_column, reach, count_column) -%}
    {%- if is_incremental() -%}
        delete from {{ this }} where {{ day_column }} in ({{ rebuilt_days(reach) }})
    {%- endif -%}
{%- endmacro %}

{#- A full build replaces the whole table (static overwrite: also the partitions it does not
    write). An incremental run overwrites the partitions it writes; a day that now has no row
    (all its purchases corrected away) is overwritten with nothing, explicitly. -#}
{% macro spark__clear_rebuilt_days(day_column, reach, count_column) -%}
    {%- if not is_incremental() -%}
        set spark.sql.sources.partitionOverwriteMode = STATIC
    {%- elif execute -%}
        {%- set emptied -%}
            select event_date from ({{ changed_days_sql() }}) as changed
            where coalesce({{ count_column }}, 0) = 0 and coalesce(built_{{ count_column }}, 0) > 0
        {%- endset -%}
        {%- set typed_nulls = [] -%}
        {%- for column in adapter.get_columns_in_relation(this) if column.name != day_column -%}
            {%- do typed_nulls.append('cast(null as ' ~ column.data_type ~ ') as ' ~ column.name) -%}
        {%- endfor -%}
        {%- for day in run_query(emptied).columns[0].values() -%}
            {#- (the rows cannot come from the table itself: Spark refuses to overwrite a table
                a statement reads without a dynamic partition) -#}
            {%- do run_query('insert overwrite table ' ~ this ~ ' partition (' ~ day_column
                ~ " = date '" ~ day ~ "') select " ~ typed_nulls | join(', ') ~ ' where 1 = 0') -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}

{#- One file per day partition on Spark (a shuffle by day before the write); nothing elsewhere. -#}
{% macro one_file_per_day(day_column) -%}
    {{ return(adapter.dispatch('one_file_per_day', 'churn_features')(day_column)) }}
{%- endmacro %}

{% macro default__one_file_per_day(day_column) -%}{%- endmacro %}

{% macro spark__one_file_per_day(day_column) -%}
    /*+ REPARTITION({{ day_column }}) */
{%- endmacro %}

{#- on-run-end: record what the per-day tables now reflect, when every one of them and
    int_event_days were built successfully in this run. -#}
{% macro record_built_days(results) -%}
    {%- if execute -%}
        {%- set per_day = [] -%}
        {%- set event_days = [] -%}
        {%- for node in graph.nodes.values() -%}
            {%- if node.resource_type == 'model' and node.package_name == project_name
                and node.config.enabled -%}
                {%- if node.config.materialized == 'incremental' -%}
                    {%- do per_day.append(node.unique_id) -%}
                {%- elif node.name == 'int_event_days' -%}
                    {%- do event_days.append(node) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set built = results | selectattr('status', 'equalto', 'success')
            | map(attribute='node') | map(attribute='unique_id') | list -%}
        {%- if event_days and event_days[0].unique_id in built
            and per_day | reject('in', built) | list | length == 0 -%}
            {%- set node = event_days[0] -%}
            {%- set source = api.Relation.create(
                database=node.database, schema=node.schema, identifier=node.alias) -%}
            {%- set ledger = source.incorporate(path={'identifier': 'int_event_days_built'}) -%}
            {%- do run_query(copy_table_sql(source, ledger, node.config.location_root)) -%}
        {%- endif -%}
    {%- endif -%}
{%- endmacro %}

{% macro copy_table_sql(source, target, location_root) -%}
    {{ return(adapter.dispatch('copy_table_sql', 'churn_features')(source, target, location_root)) }}
{%- endmacro %}

{% macro default__copy_table_sql(source, target, location_root) -%}
    create or replace table {{ target }} as select * from {{ source }}
{%- endmacro %}

{#- Parquet tables cannot be replaced in one statement: drop the catalog entry, then rewrite the
    files at the same lake location. -#}
{% macro spark__copy_table_sql(source, target, location_root) -%}
    {%- do run_query('drop table if exists ' ~ target) -%}
    create table {{ target }} using parquet location '{{ location_root }}/{{ target.identifier }}'
    as select * from {{ source }}
{%- endmacro %}

{#- on-run-start (Spark): the metastore starts empty each run; the lake's existing tables
    (var spark_tables, listed by churn_assets.lib.spark_lake) are registered first, so sources
    resolve and incremental models find their previous state. dbt has already cached the (then
    empty) catalog, so each table is added to its cache too. -#}
{% macro register_lake_tables() -%}
    {%- if execute and target.type == 'spark' -%}
        {%- for table in var('spark_tables') -%}
            {%- set relation = api.Relation.create(
                schema=table['schema'], identifier=table['name'], type='table') -%}
            {%- do run_query('create database if not exists ' ~ table['schema']) -%}
            {%- do run_query('create table if not exists ' ~ relation
                ~ " using parquet location '" ~ table['path'] ~ "'") -%}
            {%- if table['partitioned'] -%}
                {%- do run_query('alter table ' ~ relation ~ ' recover partitions') -%}
            {%- endif -%}
            {%- do adapter.cache_added(relation) -%}
        {%- endfor -%}
    {%- endif -%}
{%- endmacro %}
