{#- Staging of one raw resource: the latest version of each key with updated_at before the cutoff,
    fields cast from the record JSONB by their registry types (macro registry(), generated). -#}
{% macro stg_latest(resource_name) -%}
    {%- set meta = registry()[resource_name] %}
select
    {%- for name, type in meta['fields'].items() %}
    {{ json_field('record', name, type) }} as {{ name }},
    {%- endfor %}
    updated_at,
    _load_id
from (
    select distinct on ({{ meta['key'] | join(', ') }}) *
    from {{ source('raw', resource_name) }}
    where updated_at < {{ cutoff() }}
    order by {{ meta['key'] | join(', ') }}, updated_at desc
) latest
{%- endmacro %}

{% macro json_field(col, name, type) -%}
    {%- if type == 'jsonb' -%} {{ col }} -> '{{ name }}'
    {%- elif type == 'month' -%} to_date({{ col }} ->> '{{ name }}', 'YYYY-MM')
    {%- elif type == 'text' -%} {{ col }} ->> '{{ name }}'
    {%- else -%} ({{ col }} ->> '{{ name }}')::{{ type }}
    {%- endif -%}
{%- endmacro %}

{# The names of the raw resources in the registry (negative=true: those repairs and objections can exclude). #}
{% macro raw_resources(negative=none) -%}
    {%- set names = [] -%}
    {%- for name, meta in registry().items() if negative is none or meta['negative'] == negative -%}
        {%- do names.append(name) -%}
    {%- endfor -%}
    {{ return(names) }}
{%- endmacro %}
