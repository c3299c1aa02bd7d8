{#-
    Post-hook of a versioned model: when this node is the latest version, (re)create the
    unversioned view `<schema>.<model name>` pointing at it (dbt-core 1.11 does not create
    it). For any other version, and for unversioned models, it renders nothing.
-#}
{% macro create_latest_version_view() %}
    {%- if model.version is none or model.latest_version is none -%}
        {{ return('') }}
    {%- endif -%}
    {%- if (model.version | string) != (model.latest_version | string) -%}
        {{ return('') }}
    {%- endif -%}
    {%- set latest_view = this.incorporate(path={'identifier': model.name}, type='view') -%}
    {{ return(adapter.dispatch('create_latest_version_view', 'rideshare')(
        latest_view, portable_relation(this)
    )) }}
{% endmacro %}

{% macro default__create_latest_version_view(latest_view, versioned_relation) %}
    {{ return(
        'create or replace view ' ~ latest_view ~ ' as select * from ' ~ versioned_relation
    ) }}
{% endmacro %}
