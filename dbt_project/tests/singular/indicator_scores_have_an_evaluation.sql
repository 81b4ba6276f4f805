-- Every uscc of fct_indicator_score has its evaluation in fct_enterprise_evaluation (was the relationships
-- test on fct_indicator_score.uscc).
select s.uscc, count(*) as indicators
from {{ ref('fct_indicator_score') }} s
where not exists (select 1 from {{ ref('fct_enterprise_evaluation') }} e where e.uscc = s.uscc)
group by s.uscc
