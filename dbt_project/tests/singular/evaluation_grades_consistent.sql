-- Every evaluation whose computed grade is not the threshold grade of its total, or whose final grade
-- is not the worse of the computed grade and the grade of its cap (scoring_grades, scoring_caps).
with thresholds as (
    select distinct on (e.uscc) e.uscc, g.grade, g.grade_rank
    from {{ ref('fct_enterprise_evaluation') }} e
    join {{ ref('scoring_grades') }} g on g.model_version = e.model_version and g.min_total <= e.total_score
    order by e.uscc, g.min_total desc
)
select e.uscc, e.total_score, e.computed_grade, e.grade, e.cap_reason, t.grade as threshold_grade
from {{ ref('fct_enterprise_evaluation') }} e
join thresholds t using (uscc)
left join {{ ref('scoring_caps') }} c on c.model_version = e.model_version and c.cap_code = e.cap_reason
left join {{ ref('scoring_grades') }} cg on cg.model_version = e.model_version and cg.grade = c.grade
where e.computed_grade is distinct from t.grade
   or e.grade is distinct from case when cg.grade_rank > t.grade_rank then cg.grade else t.grade end
   or (e.cap_reason is not null and c.cap_code is null)
