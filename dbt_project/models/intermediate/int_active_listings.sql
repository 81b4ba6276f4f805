-- Enterprise listings (not revoked) active on D, by resource: what the caps read. A listing an approved
-- repair or upheld objection took out is kept, excluded (excluded_by: the decision): it caps nothing and
-- signals nothing, and whoever reads it takes only `not excluded`.
{% set listings = {'serious_dishonesty': 'uscc', 'dishonest_debtors': 'subject_id', 'abnormal_operations': 'uscc'} %}
{% for resource, subject in listings.items() %}
select '{{ resource }}' as resource, record_id, {{ subject }} as uscc, listed_on, under_objection,
       excluded, excluded_by
from ({{ counted_records(resource, with_excluded=true) }}) r
where {{ active_on_d() }}
  {% if resource == 'dishonest_debtors' %}and subject_type = 'enterprise'{% endif %}
{% if not loop.last %}union all{% endif %}
{% endfor %}
