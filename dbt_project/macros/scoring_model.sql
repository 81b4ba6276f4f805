{#- The scoring model version used for D: var model_version, else the version with the greatest
    effective_from <= D (第六条). -#}
{% macro scoring_version_sql() -%}
    {%- set forced = var('model_version', none) -%}
    select model_version, effective_from
    from {{ ref('scoring_model_versions') }}
    {% if forced -%}
    where model_version = '{{ forced }}'
    {%- else -%}
    where effective_from <= {{ eval_date() }}
    order by effective_from desc
    limit 1
    {%- endif %}
{%- endmacro %}

{# Fails the build, naming the version and indicator, when the catalogue of the chosen version is
   incomplete: no version, an indicator without bands / categories / per-record points / maximum,
   an unknown method or level, a time_window that is not an interval, no grade thresholds. #}
{% macro check_scoring_model() -%}
    {%- if execute and flags.WHICH in ('run', 'build') -%}
    {%- set sql -%}
    with v as ({{ scoring_version_sql() }}),
    i as (select i.* from {{ ref('scoring_indicators') }} i join v using (model_version))
    select 'no scoring model version ' || {{ "'" ~ var('model_version') ~ "'" if var('model_version', none) else "'in force'" }}
           || ' on {{ evaluation_date_text() }} in scoring_model_versions' where not exists (select 1 from v)
    union all
    select 'scoring model ' || v.model_version || ' has no indicators' from v where not exists (select 1 from i)
    union all
    select 'scoring model ' || v.model_version || ' has no grade thresholds (scoring_grades)' from v
    where not exists (select 1 from {{ ref('scoring_grades') }} g where g.model_version = v.model_version)
    union all
    select 'scoring model ' || i.model_version || ': indicator ' || i.indicator_code || ' (' || coalesce(i.method, 'no method') || ') '
           || case when i.method not in ('band', 'category', 'deduct', 'bonus') or i.method is null then 'has an unknown method'
                   when i.level1 not in ('basic', 'operations', 'social') or i.level1 is null then 'has an unknown level1'
                   when i.max_points is null then 'has no max_points'
                   when i.method = 'band' then 'has no bands in scoring_bands'
                   when i.method = 'category' then 'has no categories in scoring_categories'
                   else 'has no per-record points in scoring_record_points' end
    from i
    where i.method is null or i.method not in ('band', 'category', 'deduct', 'bonus')
       or i.level1 is null or i.level1 not in ('basic', 'operations', 'social') or i.max_points is null
       or (i.method = 'band' and not exists (select 1 from {{ ref('scoring_bands') }} b
                                             where b.model_version = i.model_version and b.indicator_code = i.indicator_code))
       or (i.method = 'category' and not exists (select 1 from {{ ref('scoring_categories') }} c
                                                 where c.model_version = i.model_version and c.indicator_code = i.indicator_code))
       or (i.method in ('deduct', 'bonus') and not exists (select 1 from {{ ref('scoring_record_points') }} p
                                                           where p.model_version = i.model_version and p.indicator_code = i.indicator_code))
    {%- endset -%}
    {%- set problems = run_query(sql).columns[0].values() -%}
    {%- if problems -%}
        {{ exceptions.raise_compiler_error("incomplete scoring model: " ~ (problems | join('; '))) }}
    {%- endif -%}
    {%- endif -%}
{%- endmacro %}
