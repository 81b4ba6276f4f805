{#- Staging of one raw resource: the latest version of each key with updated_at before the cutoff,
    fields cast from the record JSONB by their registry types (macro registry(), generated).

    Incremental, so a night decodes only the keys that changed, yet any night (rerun, backfill) gives
    exactly what a full rebuild would: the archive only grows, so the stored version of a key is still
    the latest before the cutoff unless the archive holds a newer version before it. Before the build
    (pre-hook stg_prune) rows whose version is not before the cutoff are dropped (a backfill to an
    earlier date; those keys are then taken again from the archive), and every row is dropped when the
    table was built by another definition (its comment, set by the post-hook, names the definition). -#}
{% macro stg_latest(resource_name) -%}
    {%- set meta = registry()[resource_name] -%}
    {{ config(unique_key=meta['key'],
              pre_hook="{{ stg_prune('" ~ resource_name ~ "') }}",
              post_hook="comment on table {{ this }} is '" ~ stg_definition(resource_name) ~ "'") }}
select
    {%- for name, type in meta['fields'].items() %}
    {{ json_field('record', name, type) }} as {{ name }},
    {%- endfor %}
    updated_at,
    _load_id
from (
    select distinct on ({% for k in meta['key'] %}archived.{{ k }}{{ ', ' if not loop.last }}{% endfor %}) archived.*
    from {{ source('raw', resource_name) }} archived
    {%- if is_incremental() %}
    left join {{ this }} stored  -- only versions newer than the stored one (or of a key not stored)
        on {% for k in meta['key'] %}stored.{{ k }} = {{ typed('archived.' ~ k, meta['fields'][k]) }}{{ ' and ' if not loop.last }}{% endfor %}
    {%- endif %}
    where archived.updated_at < {{ cutoff() }}
    {%- if is_incremental() %}
      and (stored.updated_at is null or archived.updated_at > stored.updated_at)
    {%- endif %}
    order by {% for k in meta['key'] %}archived.{{ k }}, {% endfor %}archived.updated_at desc
) latest
{%- endmacro %}

{# The definition a staging table was built by: its key and typed columns. #}
{% macro stg_definition(resource_name) -%}
    {%- set meta = registry()[resource_name] -%}
    {%- set columns = [] -%}
    {%- for name, type in meta['fields'].items() -%}{%- do columns.append(json_field('record', name, type)) -%}{%- endfor -%}
    stg_latest {{ local_md5((meta['key'] | join(',')) ~ ';' ~ (columns | join(','))) }}
{%- endmacro %}

{% macro stg_prune(resource_name) -%}
    {%- if is_incremental() -%}
    delete from {{ this }}
    where updated_at >= {{ cutoff() }}
       or (select obj_description('{{ this }}'::regclass, 'pg_class'))  -- a subquery: read once, not per row
          is distinct from '{{ stg_definition(resource_name) }}'
    {%- endif -%}
{%- endmacro %}

{% macro json_field(col, name, type) -%}
    {%- if type == 'jsonb' -%} {{ col }} -> '{{ name }}'
    {%- else -%} {{ typed(col ~ " ->> '" ~ name ~ "'", type) }}
    {%- endif -%}
{%- endmacro %}

{# A text expression as a registry type. An empty optional field is absent (validation lets it pass as
   such), so '' is null for every typed field. #}
{% macro typed(text, type) -%}
    {%- if type == 'month' -%} to_date(nullif({{ text }}, ''), 'YYYY-MM')
    {%- elif type == 'text' -%} {{ text }}
    {%- else -%} nullif({{ text }}, '')::{{ type }}
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
