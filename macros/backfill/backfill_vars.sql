{#-
    The backfill scope vars (docs/conventions.md): `backfill_start` / `backfill_end`
    (inclusive ISO dates, both or neither), `lookback_days`, `allow_full_refresh`.
-#}

{#- Parses one date var strictly: `YYYY-MM-DD` and a real calendar date. -#}
{% macro parse_backfill_date(name, value) %}
    {%- set text = value | string | trim -%}
    {%- set message = name ~ " '" ~ text ~ "' is not a valid ISO date (YYYY-MM-DD)" -%}
    {%- if not modules.re.fullmatch('[0-9]{4}-[0-9]{2}-[0-9]{2}', text) -%}
        {%- do exceptions.raise_compiler_error(message) -%}
    {%- endif -%}
    {%- set year = text[0:4] | int -%}
    {%- set month = text[5:7] | int -%}
    {%- set day = text[8:10] | int -%}
    {%- if year < 1 or month < 1 or month > 12 or day < 1 -%}
        {%- do exceptions.raise_compiler_error(message) -%}
    {%- endif -%}
    {%- if month == 12 -%}
        {%- set last_day = 31 -%}
    {%- else -%}
        {%- set last_day = (
            modules.datetime.date(year, month + 1, 1) - modules.datetime.timedelta(days=1)
        ).day -%}
    {%- endif -%}
    {%- if day > last_day -%}
        {%- do exceptions.raise_compiler_error(message) -%}
    {%- endif -%}
    {{ return(modules.datetime.date(year, month, day)) }}
{% endmacro %}


{#- True when a var is unset: null, missing or an empty string. -#}
{% macro backfill_var_is_unset(value) %}
    {{ return(value is none or (value is string and value | trim == '')) }}
{% endmacro %}


{#-
    Validates the vars and returns the explicit range as
    `{'start': date, 'end': date}`, or none when neither var is set.
    Any invalid combination fails compilation with a message naming the var.
-#}
{% macro backfill_vars() %}
    {%- set raw_start = var('backfill_start', none) -%}
    {%- set raw_end = var('backfill_end', none) -%}
    {%- set start_unset = backfill_var_is_unset(raw_start) -%}
    {%- set end_unset = backfill_var_is_unset(raw_end) -%}
    {%- do backfill_lookback_days() -%}
    {%- if start_unset and end_unset -%}
        {{ return(none) }}
    {%- endif -%}
    {%- if start_unset or end_unset -%}
        {%- set given = 'backfill_end' if start_unset else 'backfill_start' -%}
        {%- set missing = 'backfill_start' if start_unset else 'backfill_end' -%}
        {%- do exceptions.raise_compiler_error(
            'backfill_start and backfill_end must be set together: got ' ~ given
            ~ ' without ' ~ missing
        ) -%}
    {%- endif -%}
    {%- set start = parse_backfill_date('backfill_start', raw_start) -%}
    {%- set end = parse_backfill_date('backfill_end', raw_end) -%}
    {%- if start > end -%}
        {%- do exceptions.raise_compiler_error(
            'backfill_start ' ~ start ~ ' is after backfill_end ' ~ end
        ) -%}
    {%- endif -%}
    {{ return({'start': start, 'end': end}) }}
{% endmacro %}


{#- `lookback_days` as a positive integer (default 3). -#}
{% macro backfill_lookback_days() %}
    {%- set raw = var('lookback_days', 3) -%}
    {%- set text = raw | string | trim -%}
    {%- if raw is sameas true or raw is sameas false
        or not modules.re.fullmatch('[0-9]+', text) or (text | int) < 1 -%}
        {%- do exceptions.raise_compiler_error(
            "lookback_days must be a positive integer, got '" ~ text ~ "'"
        ) -%}
    {%- endif -%}
    {{ return(text | int) }}
{% endmacro %}


{#- `allow_full_refresh` is true only when set to true explicitly. -#}
{% macro backfill_full_refresh_allowed() %}
    {%- set raw = var('allow_full_refresh', false) -%}
    {{ return(raw is sameas true or (raw is string and raw | trim | lower == 'true')) }}
{% endmacro %}
