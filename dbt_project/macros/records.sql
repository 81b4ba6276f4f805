{#- Record-level rules shared by the intermediate models (scoring-model-v1.md). -#}

{% macro source_meta(resource_name) -%}
    {{ return(registry()[resource_name]) }}
{%- endmacro %}

{# A negative resource's records that count on D: not revoked, not excluded (int_record_exclusions),
   with under_objection = an open objection targets it. with_excluded: the excluded records too, with
   excluded (true) and excluded_by (the first decision to take effect, as resource/key); whoever reads
   them counts only `not excluded`. #}
{% macro counted_records(resource_name, with_excluded=false) -%}
    select r.*, (o.record_id is not null) as under_objection
    {%- if with_excluded %}, (e.record_id is not null) as excluded, e.excluded_by{% endif %}
    from {{ ref('stg_' ~ resource_name) }} r
    left join {{ ref('int_open_objections') }} o
        on o.resource = '{{ resource_name }}' and o.record_id = r.record_id
    {%- if with_excluded %}
    left join (select distinct on (record_id) record_id, excluded_by
               from {{ ref('int_record_exclusions') }}
               where resource = '{{ resource_name }}'
               order by record_id, excluded_on, excluded_by) e
        on e.record_id = r.record_id
    {%- endif %}
    where r.status <> 'revoked'
    {%- if not with_excluded %}
      and not exists (select 1 from {{ ref('int_record_exclusions') }} e
                      where e.resource = '{{ resource_name }}' and e.record_id = r.record_id)
    {%- endif %}
{%- endmacro %}

{# A positive resource plus the confirmed self-reports (reviewed_on <= D) of the matching kind,
   read from their payload as records of that resource (第十五条). #}
{% macro with_self_reports(resource_name) -%}
    {%- set fields = source_meta(resource_name).get('fields', {}) -%}
    {%- set payload = {} -%}
    {%- for kind, p in source_meta('self_reports').get('payloads', {}).items() if p.resource == resource_name -%}
        {%- do payload.update({'kind': kind, 'fields': p.fields}) -%}
    {%- endfor %}
select {% for name in fields %}{{ name }}, {% endfor %}'{{ resource_name }}' as origin
from {{ ref('stg_' ~ resource_name) }}
{%- if payload %}
union all
select
    {%- for name, type in fields.items() %}
    {% if name in payload.fields -%} {{ json_field('payload', name, payload.fields[name]) }}
    {%- elif name == 'uscc' -%} uscc
    {%- elif name == 'record_id' -%} report_id
    {%- else -%} null::{{ 'date' if type == 'month' else type }}
    {%- endif %} as {{ name }},
    {%- endfor %}
    'self_reports' as origin
from {{ ref('stg_self_reports') }}
where kind = '{{ payload.kind }}' and status = 'confirmed' and reviewed_on <= {{ eval_date() }}
{%- endif %}
{%- endmacro %}
