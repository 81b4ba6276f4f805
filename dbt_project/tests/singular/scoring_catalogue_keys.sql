-- Duplicate rows in the scoring model seeds (every number exists once per version), or a version
-- in use that is not exactly one row.
{% set keys = {'scoring_model_versions': ['model_version'], 'scoring_indicators': ['model_version', 'indicator_code'],
               'scoring_bands': ['model_version', 'indicator_code', 'lower_bound'],
               'scoring_categories': ['model_version', 'indicator_code', 'category'],
               'scoring_record_points': ['model_version', 'indicator_code', 'item'],
               'scoring_caps': ['model_version', 'cap_code'], 'scoring_grades': ['model_version', 'grade']} %}
{% for seed, cols in keys.items() %}
select '{{ seed }}' as seed, concat_ws('|', {{ cols | join(', ') }}) as duplicate_key
from {{ ref(seed) }} group by {{ cols | join(', ') }} having count(*) > 1
union all
{% endfor %}
select 'int_scoring_version', count(*)::text from {{ ref('int_scoring_version') }} having count(*) <> 1
