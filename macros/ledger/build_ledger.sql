{#-
    The build ledger's dbt writer (the orchestrator's publish is the other): every run of
    an incremental model with meta.backfill records which partitions it wrote, what
    bronze batch it could read and the code fingerprint, in backfill_audit.build_ledger,
    so an analyst's `dbt run --vars ...` or a scheduler's `dbt build` keeps
    `backfill detect` true.

    on-run-start: ledger_run_start() notes the highest batch of every bronze source a
    model reads (meta.backfill.detect.source) before any model runs: nothing a model of
    this run reads can be newer.
    on-run-end: ledger_run_end(results) records, per successful incremental model, the
    partitions of its scope: the backfill range; everything on a first build or an
    allowed full refresh; else the trailing lookback_days up to the latest partition.
-#}
{% macro ledger_run_start() %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set sources = ledger_sources() -%}
    {%- if not sources -%}{{ return('') }}{%- endif -%}
    {%- do ledger_ensure_tables() -%}
    {%- for source, batch in sources.items() -%}
        {%- if ledger_relation(source) is not none -%}
            {%- call statement('ledger_run_start', fetch_result=false) -%}
                insert into {{ ledger_table('ledger_runs') }}
                    (invocation_id, source, watermark, started_at)
                select
                    '{{ invocation_id }}', '{{ source }}', max({{ batch }}),
                    {{ dbt.current_timestamp() }}
                from {{ source }}
            {%- endcall -%}
        {%- endif -%}
    {%- endfor -%}
    {#- Hooks run outside the models' transactions: these writes commit on their own. -#}
    {%- do adapter.commit() -%}
    {{ return('') }}
{% endmacro %}


{% macro ledger_run_end(results) %}
    {%- if not execute -%}{{ return('') }}{%- endif -%}
    {%- set written = [] -%}
    {%- for result in results -%}
        {%- set node = result.node -%}
        {%- set policy = (node.config.meta or {}).get('backfill') -%}
        {%- if node.resource_type == 'model' and result.status == 'success'
            and node.config.materialized == 'incremental'
            and policy is mapping and policy.get('enabled', true) -%}
            {%- do written.append(node) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- if not written -%}{{ return('') }}{%- endif -%}
    {%- do ledger_ensure_tables() -%}
    {%- for node in written -%}
        {%- do ledger_record_model(node) -%}
    {%- endfor -%}
    {%- do adapter.commit() -%}
    {{ return('') }}
{% endmacro %}


{% macro ledger_record_model(node) %}
    {%- set policy = node.config.meta.backfill -%}
    {%- set field = policy.partition_field -%}
    {%- set relation = node.schema ~ '.' ~ (node.alias or node.name) -%}
    {%- set bounds = backfill_vars() -%}
    {%- set last_query -%}
        select max(partition_date) from {{ ledger_table('build_ledger') }}
        where model = '{{ node.name }}'
    {%- endset -%}
    {%- set last_recorded = run_query(last_query).columns[0].values()[0] -%}
    {%- if bounds is not none -%}
        {%- set start, end = bounds.start, bounds.end -%}
    {%- else -%}
        {%- set latest_query -%}select max({{ field }}) from {{ relation }}{%- endset -%}
        {%- set end = ledger_date(run_query(latest_query).columns[0].values()[0]) -%}
        {%- if end is none -%}{{ return('') }}{%- endif -%}
        {%- if flags.FULL_REFRESH or last_recorded is none -%}
            {%- set first_query -%}select min({{ field }}) from {{ relation }}{%- endset -%}
            {%- set start = ledger_date(run_query(first_query).columns[0].values()[0]) -%}
        {%- else -%}
            {%- set before = [ledger_date(last_recorded), end] | min -%}
            {%- set start = before - modules.datetime.timedelta(days=backfill_lookback_days() - 1) -%}
        {%- endif -%}
    {%- endif -%}
    {%- set counts_query -%}
        select {{ field }}, count(*) from {{ relation }}
        where {{ field }} between {{ backfill_date_literal(start) }} and {{ backfill_date_literal(end) }}
        group by 1
    {%- endset -%}
    {%- set counts = {} -%}
    {%- for row in run_query(counts_query).rows -%}
        {%- do counts.update({ledger_date(row[0]).isoformat(): row[1]}) -%}
    {%- endfor -%}
    {%- set detect = policy.get('detect') -%}
    {%- set watermark = 'null' -%}
    {%- if detect -%}
        {%- set watermark_query -%}
            select max(watermark) from {{ ledger_table('ledger_runs') }}
            where invocation_id = '{{ invocation_id }}' and source = '{{ detect.source }}'
        {%- endset -%}
        {%- set found = run_query(watermark_query).columns[0].values()[0] -%}
        {%- set watermark = "'" ~ found ~ "'" if found is not none else 'null' -%}
    {%- endif -%}
    {%- set fingerprint = ledger_code_fingerprint(node.unique_id) -%}
    {%- set values = [] -%}
    {%- for offset in range((end - start).days + 1) -%}
        {%- set day = (start + modules.datetime.timedelta(days=offset)).isoformat() -%}
        {%- do values.append(
            "('" ~ node.name ~ "', " ~ backfill_date_literal(day) ~ ", "
            ~ (counts.get(day, 0) | int) ~ ", " ~ watermark ~ ", '" ~ fingerprint ~ "', "
            ~ "'dbt', '" ~ invocation_id ~ "', " ~ dbt.current_timestamp() ~ ")"
        ) -%}
    {%- endfor -%}
    {%- for batch in values | batch(500) -%}
        {%- call statement('ledger_run_end', fetch_result=false) -%}
            insert into {{ ledger_table('build_ledger') }}
                (model, partition_date, row_count, watermark, code_fingerprint, writer,
                 writer_id, built_at)
            values {{ batch | join(', ') }}
        {%- endcall -%}
    {%- endfor -%}
{% endmacro %}


{#- Bronze sources of the project's models (meta.backfill.detect): {relation: batch column}. -#}
{% macro ledger_sources() %}
    {%- set sources = {} -%}
    {%- for node in graph.nodes.values() if node.resource_type == 'model' -%}
        {%- set detect = ((node.config.meta or {}).get('backfill') or {}).get('detect') -%}
        {%- if detect is mapping -%}
            {%- do sources.update({detect.source: detect.get('batch', '_batch_id')}) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(sources) }}
{% endmacro %}


{#-
    md5 of the sorted `unique_id=checksum` lines of the model and everything upstream of
    it in the graph: the same as orchestrator.manifest.Manifest.code_fingerprint.
-#}
{% macro ledger_code_fingerprint(unique_id) %}
    {%- set lines, seen, stack = [], [], [unique_id] -%}
    {%- for _ in range(10000) if stack -%}
        {%- set uid = stack.pop() -%}
        {%- set node = graph.nodes.get(uid) -%}
        {%- if uid not in seen and node is not none -%}
            {%- do seen.append(uid) -%}
            {%- do lines.append(uid ~ '=' ~ node.checksum.checksum) -%}
            {%- do stack.extend(node.depends_on.nodes) -%}
        {%- endif -%}
    {%- endfor -%}
    {{ return(local_md5(lines | sort | join('\n'))) }}
{% endmacro %}


{% macro ledger_table(name) %}
    {{- return('backfill_audit.' ~ name) -}}
{% endmacro %}


{% macro ledger_relation(name) %}
    {%- set schema, identifier = name.split('.') -%}
    {{ return(adapter.get_relation(database=target.database, schema=schema, identifier=identifier)) }}
{% endmacro %}


{% macro ledger_date(value) %}
    {%- if value is none -%}{{ return(none) }}{%- endif -%}
    {%- if value is string -%}{{ return(modules.datetime.date.fromisoformat(value[0:10])) }}{%- endif -%}
    {%- if value.hour is defined -%}{{ return(value.date()) }}{%- endif -%}
    {{ return(value) }}
{% endmacro %}


{#- The tables the orchestrator's audit store also creates (orchestrator/audit/ledger.py). -#}
{% macro ledger_ensure_tables() %}
    {%- do adapter.create_schema(api.Relation.create(database=target.database, schema='backfill_audit')) -%}
    {%- set string, bigint = dbt.type_string(), dbt.type_bigint() -%}
    {%- set timestamp = dbt.type_timestamp() -%}
    {%- call statement('ledger_table', fetch_result=false) -%}
        create table if not exists {{ ledger_table('build_ledger') }} (
            model {{ string }}, partition_date date, row_count {{ bigint }},
            watermark {{ string }}, code_fingerprint {{ string }}, writer {{ string }},
            writer_id {{ string }}, built_at {{ timestamp }}
        )
    {%- endcall -%}
    {%- call statement('ledger_runs_table', fetch_result=false) -%}
        create table if not exists {{ ledger_table('ledger_runs') }} (
            invocation_id {{ string }}, source {{ string }}, watermark {{ string }},
            started_at {{ timestamp }}
        )
    {%- endcall -%}
{% endmacro %}
