{#-
    on-run-start hook (dbt_project.yml): warns, once per invocation, for every exposure
    (a Looker dashboard, say) that depends on a model version whose deprecation_date has
    been reached. The same rule as orchestrator.looker.deprecated_exposure_warnings, which
    `backfill plan` reports. BACKFILL_TODAY (YYYY-MM-DD) freezes today, as for the
    orchestrator; otherwise today in UTC. Renders no SQL.
-#}
{% macro warn_deprecated_exposures() %}
    {%- if not execute -%}
        {{ return('') }}
    {%- endif -%}
    {%- set frozen = env_var('BACKFILL_TODAY', '') | trim -%}
    {%- if frozen -%}
        {%- set today = parse_backfill_date('BACKFILL_TODAY', frozen) | string -%}
    {%- else -%}
        {%- set today = modules.datetime.datetime.now(modules.pytz.utc).date() | string -%}
    {%- endif -%}
    {%- for exposure in graph.exposures.values() | sort(attribute='name') -%}
        {%- for uid in exposure.depends_on.nodes | sort -%}
            {%- set node = graph.nodes.get(uid) -%}
            {%- if node and node.version is not none and node.deprecation_date -%}
                {%- set deprecated_on = (node.deprecation_date | string)[0:10] -%}
                {%- if deprecated_on <= today -%}
                    {%- do exceptions.warn(
                        'exposure ' ~ exposure.name ~ ' reads ' ~ node.name ~ ' v'
                        ~ node.version ~ ', deprecated since ' ~ deprecated_on
                        ~ ' (latest is v' ~ node.latest_version ~ '): move it to v'
                        ~ node.latest_version ~ ' (docs/looker.md)'
                    ) -%}
                {%- endif -%}
            {%- endif -%}
        {%- endfor -%}
    {%- endfor -%}
    {{ return('') }}
{% endmacro %}
