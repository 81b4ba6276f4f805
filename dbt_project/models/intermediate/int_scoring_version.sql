-- depends_on: {{ ref('scoring_indicators') }}, {{ ref('scoring_bands') }}, {{ ref('scoring_categories') }}
-- depends_on: {{ ref('scoring_record_points') }}, {{ ref('scoring_grades') }}, {{ ref('scoring_caps') }}
{{ check_scoring_model() }}
-- The scoring model version used for D (one row): var model_version, else the one in force on D;
-- the build fails here, naming the indicator, when that version's catalogue is incomplete.
{{ scoring_version_sql() }}
