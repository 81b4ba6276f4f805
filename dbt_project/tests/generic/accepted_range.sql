{% test accepted_range(model, column_name, min_value=none, max_value=none, max_column=none) %}
select * from {{ model }}
where {{ column_name }} is null
   {% if min_value is not none %}or {{ column_name }} < {{ min_value }}{% endif %}
   {% if max_value is not none %}or {{ column_name }} > {{ max_value }}{% endif %}
   {% if max_column is not none %}or {{ column_name }} > {{ max_column }}{% endif %}
{% endtest %}
