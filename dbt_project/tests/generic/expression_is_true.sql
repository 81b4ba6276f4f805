{# Rows where the expression is not true (dbt_utils.expression_is_true without the hub). #}
{% test expression_is_true(model, expression) %}
select * from {{ model }} where not coalesce(({{ expression }}), false)
{% endtest %}
