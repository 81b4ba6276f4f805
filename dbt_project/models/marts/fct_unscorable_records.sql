-- Records known on D that load but cannot be scored, with the reason; they are never scored and never
-- fatal: a reference to an enterprise the platform never sent, or a credit repair / objection whose
-- target record does not exist (or is not a negative record).
{% set negative = raw_resources(negative=true) %}
with enterprises as (select uscc from {{ ref('stg_enterprises') }}),
negative_records as (
    {% for r in negative -%}
    select '{{ r }}' as resource, record_id from {{ ref('stg_' ~ r) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
),
references_ as (
    {% for r in raw_resources() if r != 'enterprises' -%}
    {%- set meta = source_meta(r) -%}
    {%- set key = meta.get('key', ['uscc']) -%}
    {%- for col in ['uscc', 'subject_id', 'leading_uscc', 'partner_uscc'] if col in meta.get('fields', {}) %}
    select '{{ r }}' as resource, concat_ws('|', rec.{{ key | join(', rec.') }}) as record_key, rec.{{ col }} as reference,
           'unknown_enterprise' as reason, '{{ col }} names an enterprise the platform never sent' as detail
    from {{ ref('stg_' ~ r) }} rec
    where not exists (select 1 from enterprises e where e.uscc = rec.{{ col }})
      {% if col == 'subject_id' %}and rec.subject_type = 'enterprise'{% endif %}
    union all
    {%- endfor %}
    {%- endfor %}
    {% for r in ['credit_repairs', 'objections'] -%}
    select '{{ r }}', {{ source_meta(r)['key'] | first }}, t.target_resource || '/' || t.target_record_id,
           case when t.target_resource in ({{ "'" ~ (negative | join("', '")) ~ "'" }})
                then 'target_not_found' else 'target_not_negative' end,
           'the targeted record does not exist (as known on D) or is not a negative record'
    from {{ ref('stg_' ~ r) }} t
    where not exists (select 1 from negative_records n
                      where n.resource = t.target_resource and n.record_id = t.target_record_id)
    {% if not loop.last %}union all{% endif %}
    {% endfor %}
)
select {{ eval_date() }} as evaluation_date, resource, record_key, reference, reason, detail
from references_
