{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key=['uscc', 'indicator_code', 'valid_from'],
          full_refresh=false, on_schema_change='fail') }}
{{ scd2_history(ref('fct_indicator_score'), ['uscc', 'indicator_code'],
    ['model_version', 'points', 'max_points', 'under_objection']) }}
