{#-
    Which partitions one invocation of an incremental fact reads and rewrites.

    partition_scope(partition_field) returns a dict (partition_field defaults to the model's
    meta.backfill.partition_field; a model passes it so its unit tests, whose nodes carry
    no meta, know it too):
      field       the model's partition column (meta.backfill.partition_field)
      mode        'range'    backfill_start/backfill_end are set: exactly that range
                  'lookback' incremental run without vars: from the latest partition in
                             `this` minus (lookback_days - 1) onwards, so late events and
                             new days both land
                  'all'      first build (or allowed full refresh): every partition
      start, end  python dates bounding the scope (none = unbounded on that side)
      start_sql, end_sql   the same bounds as SQL date expressions (none = unbounded)
-#}
{% macro partition_scope(partition_field=none) %}
    {%- set bounds = backfill_vars() -%}
    {%- set field = backfill_partition_field(partition_field) -%}
    {%- do guard_full_refresh() -%}
    {%- do check_static_partitions(bounds) -%}

    {%- if bounds is not none -%}
        {{ return({
            'field': field, 'mode': 'range',
            'start': bounds.start, 'end': bounds.end,
            'start_sql': backfill_date_literal(bounds.start),
            'end_sql': backfill_date_literal(bounds.end),
        }) }}
    {%- endif -%}

    {%- if not (execute and is_incremental()) -%}
        {{ return({
            'field': field, 'mode': 'all', 'start': none, 'end': none,
            'start_sql': none, 'end_sql': none,
        }) }}
    {%- endif -%}

    {%- set lookback_days = backfill_lookback_days() -%}
    {%- if model.resource_type == 'unit_test' -%}
        {#- In a unit test `this` is the fixture CTE: compute the bound in SQL. -#}
        {%- set latest -%}(select max({{ field }}) from {{ this }}){%- endset -%}
        {{ return({
            'field': field, 'mode': 'lookback', 'start': none, 'end': none,
            'start_sql': 'cast(' ~ dbt.dateadd('day', 1 - lookback_days, latest) ~ ' as date)',
            'end_sql': none,
        }) }}
    {%- endif -%}

    {%- set latest_query -%}
        select max({{ field }}) as latest_partition from {{ this }}
    {%- endset -%}
    {%- set latest = run_query(latest_query).columns[0].values()[0] -%}
    {%- if latest is none -%}
        {{ return({
            'field': field, 'mode': 'all', 'start': none, 'end': none,
            'start_sql': none, 'end_sql': none,
        }) }}
    {%- endif -%}
    {%- if latest is string -%}
        {%- set latest = modules.datetime.date.fromisoformat(latest[0:10]) -%}
    {%- elif latest.date is defined and latest.hour is defined -%}
        {%- set latest = latest.date() -%}
    {%- endif -%}
    {%- set start = latest - modules.datetime.timedelta(days=lookback_days - 1) -%}
    {{ return({
        'field': field, 'mode': 'lookback', 'start': start, 'end': none,
        'start_sql': backfill_date_literal(start), 'end_sql': none,
    }) }}
{% endmacro %}


{#-
    A boolean SQL predicate restricting `column` to the scope's days.
    `days_after` widens the upper bound, for sources whose rows of a partition can fall on
    the following day (a trip requested before midnight that completes after it).
    `column_type` 'timestamp' compares a raw timestamp column with the days' bounds
    (half-open) instead of casting it to a date: a filter on a stored column is what
    DuckDB's zone maps (min/max per row group) can prune with, so a chunk's scan of a
    large source skips the row groups outside its days.
-#}
{% macro partition_filter(column, scope, days_after=0, column_type='date') %}
    {%- if column_type not in ('date', 'timestamp') -%}
        {%- do exceptions.raise_compiler_error(
            "partition_filter: column_type must be 'date' or 'timestamp', got " ~ column_type
        ) -%}
    {%- endif -%}
    {%- set conditions = [] -%}
    {%- if scope.start_sql is not none -%}
        {%- if column_type == 'timestamp' -%}
            {%- do conditions.append(column ~ ' >= cast(' ~ scope.start_sql ~ ' as timestamp)') -%}
        {%- else -%}
            {%- do conditions.append(column ~ ' >= ' ~ scope.start_sql) -%}
        {%- endif -%}
    {%- endif -%}
    {%- if scope.end is not none -%}
        {%- set end = scope.end + modules.datetime.timedelta(days=days_after) -%}
        {%- if column_type == 'timestamp' -%}
            {%- set after_end = end + modules.datetime.timedelta(days=1) -%}
            {%- do conditions.append(
                column ~ ' < cast(' ~ backfill_date_literal(after_end) ~ ' as timestamp)'
            ) -%}
        {%- else -%}
            {%- do conditions.append(column ~ ' <= ' ~ backfill_date_literal(end)) -%}
        {%- endif -%}
    {%- endif -%}
    {{- return(conditions | join(' and ') if conditions else 'true') -}}
{% endmacro %}


{#- A portable SQL date literal. -#}
{% macro backfill_date_literal(value) %}
    {{- return("cast('" ~ value ~ "' as date)") -}}
{% endmacro %}


{#-
    The model's partition column: `partition_field` as the model passes it, checked against
    `meta.backfill.partition_field` (the orchestrator's source of truth) when the node
    carries meta (a unit test node does not).
-#}
{% macro backfill_partition_field(partition_field=none) %}
    {%- set meta = config.get('meta') or {} -%}
    {%- set declared = (meta.get('backfill') or {}).get('partition_field') -%}
    {%- if not execute -%}
        {{ return(partition_field or declared) }}
    {%- endif -%}
    {%- if partition_field and declared and partition_field != declared -%}
        {%- do exceptions.raise_compiler_error(
            model.name ~ ': partition field ' ~ partition_field ~ ' differs from'
            ~ ' meta.backfill.partition_field ' ~ declared
        ) -%}
    {%- endif -%}
    {%- if not (partition_field or declared) -%}
        {%- do exceptions.raise_compiler_error(
            model.name ~ ': meta.backfill.partition_field is required by the partition'
            ~ ' overwrite strategy'
        ) -%}
    {%- endif -%}
    {{ return(partition_field or declared) }}
{% endmacro %}


{#-
    Refuses a full refresh of an existing fact unless `allow_full_refresh: true`:
    a full refresh rebuilds every partition and would wipe history that bronze may
    no longer hold. A first build (no relation yet) is always allowed.
-#}
{% macro guard_full_refresh() %}
    {%- if execute and model.resource_type == 'model' and should_full_refresh()
        and not backfill_full_refresh_allowed() -%}
        {%- if load_relation(this) is not none -%}
            {%- do exceptions.raise_compiler_error(
                '--full-refresh of ' ~ model.name ~ ' would rebuild every partition and'
                ~ " wipe its history: backfill a range with --vars '{backfill_start: ...,"
                ~ " backfill_end: ...}' or confirm with --vars '{allow_full_refresh: true}'"
            ) -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}


{#-
    BigQuery's static `partitions` are config, rendered when dbt parses the project. A run
    that reuses a manifest parsed with other vars would overwrite the wrong partitions:
    refuse it. (DuckDB computes everything at run time and needs no such check.) Only
    commands that write a model use the partitions: a compile (the orchestrator compiles
    every chunk's SELECT from one manifest parsed without vars) is not checked.
-#}
{% macro check_static_partitions(bounds) %}
    {%- if execute and target.type == 'bigquery' and model.resource_type == 'model'
        and flags.WHICH in ['run', 'build', 'retry'] -%}
        {%- set parsed = config.get('partitions') or [] -%}
        {%- set expected = backfill_partition_list(bounds.start, bounds.end)
            if bounds is not none else [] -%}
        {%- if parsed | list != expected | list -%}
            {%- do exceptions.raise_compiler_error(
                model.name ~ ': the static partitions were parsed with other backfill vars'
                ~ ' (' ~ (parsed | length) ~ ' partitions, expected ' ~ (expected | length)
                ~ '); re-parse the project with the vars of this run'
            ) -%}
        {%- endif -%}
    {%- endif -%}
{% endmacro %}
