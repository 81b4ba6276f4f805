-- Counted (not revoked, not excluded) enterprise listings active on D, by resource: what the caps read.
{% set listings = {'serious_dishonesty': 'uscc', 'dishonest_debtors': 'subject_id', 'abnormal_operations': 'uscc'} %}
{% for resource, subject in listings.items() %}
select '{{ resource }}' as resource, record_id, {{ subject }} as uscc, under_objection
from ({{ counted_records(resource) }}) r
where {{ active_on_d() }}
  {% if resource == 'dishonest_debtors' %}and subject_type = 'enterprise'{% endif %}
{% if not loop.last %}union all{% endif %}
{% endfor %}
