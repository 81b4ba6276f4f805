{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['uscc', 'valid_from'],
          full_refresh=false, on_schema_change='fail') }}
-- depends_on: {{ ref('fct_enterprise_evaluation') }}
{{ scd2_history(ref('fct_enterprise_evaluation'), ['uscc'],
    ['enterprise_name', 'legal_rep_name', 'region_code', 'industry_code', 'is_leading', 'model_version', 'total_score',
     'grade', 'computed_grade', 'cap_reason', 'basic_score', 'operations_score', 'social_score']) }}
