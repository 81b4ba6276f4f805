{#- Custom schemas are used as they are (staging, intermediate, marts), not prefixed with the
    target schema; var schema_suffix sends a scratch build (model compare) elsewhere. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {{ (custom_schema_name or target.schema) | trim }}{{ var('schema_suffix', '') }}
{%- endmacro %}
