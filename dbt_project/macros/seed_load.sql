{#- dbt's default__load_csv_rows renders one get_binding_char() macro call per cell: seeding the
    2922-row work calendar took 8-20 s of Jinja under load. Same statements and bindings, the row of
    placeholders rendered once per seed. -#}
{% macro postgres__load_csv_rows(model, agate_table) %}
  {%- set batch_size = get_batch_size() -%}
  {%- set cols_sql = get_seed_column_quoted_csv(model, agate_table.column_names) -%}
  {%- set binding = get_binding_char() -%}
  {%- set row_sql = '(' ~ ([binding] * (agate_table.column_names | length)) | join(',') ~ ')' -%}
  {%- set statements = [] -%}
  {%- for chunk in agate_table.rows | batch(batch_size) -%}
      {%- set bindings = [] -%}
      {%- for row in chunk -%}
          {%- do bindings.extend(row) -%}
      {%- endfor -%}
      {%- set sql -%}
          insert into {{ this.render() }} ({{ cols_sql }}) values
          {{ ([row_sql] * (chunk | length)) | join(',\n') }}
      {%- endset -%}
      {%- do adapter.add_query(sql, bindings=bindings, abridge_sql_log=True) -%}
      {%- if loop.index0 == 0 -%}
          {%- do statements.append(sql) -%}
      {%- endif -%}
  {%- endfor -%}
  {{ return(statements[0]) }}
{% endmacro %}
