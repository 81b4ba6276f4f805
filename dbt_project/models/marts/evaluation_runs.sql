{{ config(materialized='incremental', incremental_strategy='delete+insert', unique_key='evaluation_date',
          full_refresh=false) }}
-- depends_on: {{ ref('evaluation_history') }}, {{ ref('indicator_history') }}
-- The evaluation dates whose results the history tables hold (built after them: while they build, the
-- latest date here tells a forward night from a backfill).
select {{ eval_date() }} as evaluation_date, (select model_version from {{ ref('int_scoring_version') }}) as model_version,
       (select count(*) from {{ ref('fct_enterprise_evaluation') }})::integer as enterprises, now() as built_at
