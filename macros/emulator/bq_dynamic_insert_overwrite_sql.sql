{#-
    Overrides dbt-bigquery's `bq_dynamic_insert_overwrite_sql` (an insert_overwrite run
    without static partitions: a lookback run of a fact) ONLY when the env var
    RIDESHARE_BQ_EMULATOR is 'true', which the test suite sets for its local BigQuery
    emulator. Everywhere else it returns dbt-bigquery's own macro unchanged, so production
    runs the real BigQuery SQL.

    The emulator (bqemulator 1.4.0) cannot run the statement dbt-bigquery uses to collect
    the partitions to replace,
        set (dbt_partitions_for_replacement) = (
            select as struct array_agg(distinct <partition> ignore nulls) from <tmp>
        );
    (no `set (...) = (select as struct ...)`, no `array_agg(distinct ... ignore nulls)`).
    This variant collects the same array with
        set dbt_partitions_for_replacement = (
            select array_agg(distinct <partition>) from <tmp> where <partition> is not null
        );
    and is otherwise dbt-bigquery 1.12.1's script (temp table, merge, drop).
-#}
{% macro bq_dynamic_insert_overwrite_sql(
    tmp_relation, target_relation, sql, unique_key, partition_by, dest_columns,
    tmp_relation_exists, copy_partitions
) %}
    {%- if env_var('RIDESHARE_BQ_EMULATOR', '') != 'true' or copy_partitions is true -%}
        {{ return(dbt.bq_dynamic_insert_overwrite_sql(
            tmp_relation, target_relation, sql, unique_key, partition_by, dest_columns,
            tmp_relation_exists, copy_partitions
        )) }}
    {%- endif -%}

    {%- set predicate -%}
        {{ partition_by.render_wrapped(alias='DBT_INTERNAL_DEST') }} in unnest(dbt_partitions_for_replacement)
    {%- endset -%}

    {%- set source_sql -%}
    (
        select
        {% if partition_by.time_ingestion_partitioning -%}
            {{ partition_by.insertable_time_partitioning_field() }},
        {%- endif -%}
        * from {{ tmp_relation }}
    )
    {%- endset -%}

    -- generated script to merge partitions into {{ target_relation }} (emulator variant)
    declare dbt_partitions_for_replacement array<{{ partition_by.data_type_for_partition() }}>;

    {% if not tmp_relation_exists %}
    -- 1. create a temp table with model data
    {{ bq_create_table_as(partition_by, True, tmp_relation, sql, 'sql') }}
    {% else %}
    -- 1. temp table already exists, we used it to check for schema changes
    {% endif %}
    {%- set partition_field = partition_by.time_partitioning_field()
        if partition_by.time_ingestion_partitioning else partition_by.render_wrapped() -%}

    -- 2. define partitions to update
    set dbt_partitions_for_replacement = (
        select array_agg(distinct {{ partition_field }})
        from {{ tmp_relation }}
        where {{ partition_field }} is not null
    );

    -- 3. run the merge statement
    {{ get_insert_overwrite_merge_sql(target_relation, source_sql, dest_columns, [predicate]) }};

    -- 4. clean up the temp table
    drop table if exists {{ tmp_relation }}
{% endmacro %}
