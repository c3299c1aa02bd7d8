{#-
    Partition overwrite: the one incremental strategy of the facts, dispatched by adapter.

    A fact configures itself with
        {{ config(materialized='incremental', **partition_overwrite_config('trip_date', [...])) }}
    which picks the strategy name and its settings per adapter:
      - DuckDB (and any adapter without its own implementation): the custom strategy
        `partition_overwrite`, i.e. get_incremental_partition_overwrite_sql below: a DELETE
        of the scope's partitions and an INSERT of the new rows, run by the incremental
        materialization as one statement inside its transaction (BEGIN ... COMMIT).
      - BigQuery: dbt-bigquery's incremental materialization only accepts its built-in
        strategy names (merge, insert_overwrite, microbatch), so the config selects
        `insert_overwrite` with a day `partition_by`, clustering, and static `partitions`
        computed from backfill_start/backfill_end. Without the vars (a lookback run) the
        partitions are dynamic: the ones present in the new rows.
-#}
{% macro partition_overwrite_config(partition_field, cluster_by=none) %}
    {{ return(adapter.dispatch('partition_overwrite_config', 'rideshare')(
        partition_field, cluster_by
    )) }}
{% endmacro %}

{% macro default__partition_overwrite_config(partition_field, cluster_by=none) %}
    {%- do backfill_vars() -%}
    {{ return({'incremental_strategy': 'partition_overwrite', 'on_schema_change': 'fail'}) }}
{% endmacro %}

{% macro bigquery__partition_overwrite_config(partition_field, cluster_by=none) %}
    {%- set bounds = backfill_vars() -%}
    {%- set settings = {
        'incremental_strategy': 'insert_overwrite',
        'on_schema_change': 'fail',
        'partition_by': {'field': partition_field, 'data_type': 'date', 'granularity': 'day'},
    } -%}
    {%- if cluster_by -%}
        {%- do settings.update({'cluster_by': cluster_by}) -%}
    {%- endif -%}
    {%- if bounds is not none -%}
        {%- do settings.update({'partitions': backfill_partition_list(bounds.start, bounds.end)}) -%}
    {%- endif -%}
    {{ return(settings) }}
{% endmacro %}


{#- Every day of [start, end] as a SQL date literal (static partitions for BigQuery). -#}
{% macro backfill_partition_list(start, end) %}
    {%- set days = [] -%}
    {%- for offset in range((end - start).days + 1) -%}
        {%- do days.append(backfill_date_literal(start + modules.datetime.timedelta(days=offset))) -%}
    {%- endfor -%}
    {{ return(days) }}
{% endmacro %}


{#- The strategy entry point dbt looks up for incremental_strategy='partition_overwrite'. -#}
{% macro get_incremental_partition_overwrite_sql(arg_dict) %}
    {{ return(adapter.dispatch('partition_overwrite_sql', 'rideshare')(arg_dict)) }}
{% endmacro %}


{#-
    DELETE every partition of the scope, then INSERT the new rows. Runs as one statement
    inside the materialization's transaction, so a failure leaves the target untouched.
    Deleting the whole scope (not only the partitions present in the new rows, as
    delete+insert does) empties a day whose source rows vanished. Rows outside the scope
    are never touched; new rows outside it are refused before anything is deleted.
-#}
{% macro default__partition_overwrite_sql(arg_dict) %}
    {%- set target = arg_dict['target_relation'] -%}
    {%- set source = arg_dict['temp_relation'] -%}
    {%- set scope = partition_scope() -%}
    {%- set in_scope = partition_filter(scope.field, scope) -%}
    {%- set columns = get_quoted_csv(arg_dict['dest_columns'] | map(attribute='name')) -%}

    {%- set stray_query -%}
        select count(*) as stray_rows from {{ source }}
        where {{ scope.field }} is null or not ({{ in_scope }})
    {%- endset -%}
    {%- set stray_rows = run_query(stray_query).columns[0].values()[0] -%}
    {%- if stray_rows | int > 0 -%}
        {%- do exceptions.raise_compiler_error(
            model.name ~ ': ' ~ stray_rows ~ ' new rows fall outside the partitions being'
            ~ ' replaced (' ~ in_scope ~ '); nothing was written'
        ) -%}
    {%- endif -%}

    delete from {{ target }}
    where {{ in_scope }};

    insert into {{ target }} ({{ columns }})
    select {{ columns }}
    from {{ source }}
{% endmacro %}

{% macro duckdb__partition_overwrite_sql(arg_dict) %}
    {{ return(default__partition_overwrite_sql(arg_dict)) }}
{% endmacro %}

{#-
    Not reached by dbt-bigquery's materialization (see partition_overwrite_config), but
    kept so the strategy means the same everywhere: insert_overwrite of static partitions.
-#}
{% macro bigquery__partition_overwrite_sql(arg_dict) %}
    {%- set bounds = backfill_vars() -%}
    {%- set partitions = backfill_partition_list(bounds.start, bounds.end)
        if bounds is not none else none -%}
    {{ return(bq_insert_overwrite_sql(
        arg_dict['temp_relation'], arg_dict['target_relation'], none, arg_dict['unique_key'],
        adapter.parse_partition_by(config.get('partition_by')), partitions,
        arg_dict['dest_columns'], true, false
    )) }}
{% endmacro %}


{#-
    Rows written in partition order where the warehouse keeps them in insertion order
    (DuckDB): a partition's rows then sit together, so a range's min/max zone maps skip the
    rest of the table when a backfill measures, backs up or publishes it, or detect looks
    a key up. BigQuery partitions and clusters the table instead: nothing to add.
-#}
{% macro partition_order_by(partition_field) %}
    {{ return(adapter.dispatch('partition_order_by', 'rideshare')(partition_field)) }}
{% endmacro %}

{% macro default__partition_order_by(partition_field) %}
    {{- return('order by ' ~ partition_field) -}}
{% endmacro %}

{% macro bigquery__partition_order_by(partition_field) %}
    {{- return('') -}}
{% endmacro %}
