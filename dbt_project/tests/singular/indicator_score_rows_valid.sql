-- fct_indicator_score in one pass instead of one test per column: points outside [0, max_points], an
-- unknown level1. (Not null: the contract. Unique: int_indicator_points' test, which fct_indicator_score is
-- 1:1 with, since it runs before both marts in dbt build. Its uscc in fct_enterprise_evaluation:
-- indicator_scores_have_an_evaluation.sql, apart so that this test, on this model alone, still runs before
-- indicator_history and stops it on a failure.)
select s.evaluation_date, s.uscc, s.indicator_code,
       case when not coalesce(s.points between 0 and s.max_points, false) then 'points outside 0..max_points'
            else 'unknown level1 ' || s.level1 end
from {{ ref('fct_indicator_score') }} s
where not coalesce(s.points between 0 and s.max_points, false)
   or s.level1 not in ('basic', 'operations', 'social')
