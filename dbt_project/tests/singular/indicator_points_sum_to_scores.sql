-- Every enterprise whose level-1 scores and total are not the sums of its indicator points, or whose
-- indicators are not exactly the catalogue of its model version.
with sums as (
    select uscc, model_version, count(*) as indicators, sum(points) as total,
           sum(points) filter (where level1 = 'basic') as basic,
           sum(points) filter (where level1 = 'operations') as operations,
           sum(points) filter (where level1 = 'social') as social
    from {{ ref('fct_indicator_score') }}
    group by uscc, model_version
)
select e.uscc, e.total_score, s.total, s.indicators
from {{ ref('fct_enterprise_evaluation') }} e
left join sums s using (uscc, model_version)
where s.uscc is null
   or s.total is distinct from e.total_score
   or coalesce(s.basic, 0) <> e.basic_score or coalesce(s.operations, 0) <> e.operations_score
   or coalesce(s.social, 0) <> e.social_score
   or s.indicators <> (select count(*) from {{ ref('scoring_indicators') }} i where i.model_version = e.model_version)
