{#-
    On DuckDB, render ref() and source() without the database (catalog) part.

    DuckDB names the catalog after the file (`rideshare.duckdb` -> "rideshare") and stores a
    view's SQL as written, so a view reading "rideshare"."staging"."x" breaks as soon as the
    file is copied or renamed (a backup, a test's private copy): Catalog "rideshare" does not
    exist. Schema-qualified names resolve in whichever file is open. Other adapters
    (BigQuery needs the project) keep dbt's full names.
-#}
{% macro ref() %}
    {%- set version = kwargs.get('version') or kwargs.get('v') -%}
    {%- if varargs | length == 1 -%}
        {%- set relation = builtins.ref(varargs[0], version=version) -%}
    {%- else -%}
        {%- set relation = builtins.ref(varargs[0], varargs[1], version=version) -%}
    {%- endif -%}
    {{ return(portable_relation(relation)) }}
{% endmacro %}

{% macro source(source_name, table_name) %}
    {{ return(portable_relation(builtins.source(source_name, table_name))) }}
{% endmacro %}

{% macro portable_relation(relation) %}
    {%- if target.type == 'duckdb' and relation is not none
        and relation.include is defined and relation.database -%}
        {{ return(relation.include(database=false)) }}
    {%- endif -%}
    {{ return(relation) }}
{% endmacro %}
