{#- The evaluation date D and the time arithmetic of scoring-model-v1.md ("Evaluation semantics"). -#}

{% macro evaluation_date_text() -%}
    {#- var evaluation_date, else (when executing) env CREDITPLUS_EVALUATION_DATE: dbt_runner.build passes D
        there so that the vars, hence dbt's partial parse, stay the same from one night to the next. -#}
    {%- set d = var('evaluation_date', none) -%}
    {%- if d is none and execute -%}{%- set d = env_var('CREDITPLUS_EVALUATION_DATE', '') or none -%}{%- endif -%}
    {%- if d is none and not execute -%}{%- set d = '2000-01-01' -%}{%- endif -%}
    {%- if d is none or not modules.re.fullmatch('\d{4}-\d{2}-\d{2}', d | string) -%}
        {{ exceptions.raise_compiler_error("var evaluation_date is required as YYYY-MM-DD, e.g. dbt build --vars '{evaluation_date: 2026-11-26}'; got " ~ (d | string)) }}
    {%- endif -%}
    {%- do modules.datetime.date.fromisoformat(d | string) -%}
    {{- d | string -}}
{%- endmacro %}

{# D as a SQL date literal #}
{% macro eval_date() -%}
    date '{{ evaluation_date_text() }}'
{%- endmacro %}

{# Knowledge cutoff: D+1 00:00 at the fixed offset +08:00 (never a named zone: Asia/Shanghai had DST). #}
{% macro cutoff() -%}
    {%- set next_day = modules.datetime.date.fromisoformat(evaluation_date_text()) + modules.datetime.timedelta(days=1) -%}
    timestamptz '{{ next_day.isoformat() }}T00:00:00+08:00'
{%- endmacro %}

{# The calendar date of a timestamptz at +08:00 (AT TIME ZONE '+08:00' would invert the sign). #}
{% macro cst_date(ts) -%}
    (({{ ts }}) at time zone 'UTC' + interval '8 hours')::date
{%- endmacro %}

{# "active on D": listed_on <= D and (removed_on is null or removed_on > D) #}
{% macro active_on_d(listed_on='listed_on', removed_on='removed_on') -%}
    ({{ listed_on }} <= {{ eval_date() }} and ({{ removed_on }} is null or {{ removed_on }} > {{ eval_date() }}))
{%- endmacro %}

{# "within the indicator's window of D": date > D - window and <= D; the window ('3 years', '12 months')
   is the indicator's time_window in the scoring model (PostgreSQL keeps month and day, 29 Feb -> 28 Feb). #}
{% macro window_start(indicator_code, anchor=none) -%}
    (select {{ anchor or eval_date() }} - time_window::interval from {{ ref('int_scoring_indicators') }} where indicator_code = '{{ indicator_code }}')
{%- endmacro %}

{% macro within_window(col, indicator_code) -%}
    ({{ col }} > {{ window_start(indicator_code) }} and {{ col }} <= {{ eval_date() }})
{%- endmacro %}
