-- One row per graded enterprise on D: level-1 scores and total (sums of indicator points), the grade
-- computed from the total, and the final grade = the worse of it and every cap (contract: the yml).
with scores as (
    select uscc, model_version,
           sum(points) as total_score,
           coalesce(sum(points) filter (where level1 = 'basic'), 0) as basic_score,
           coalesce(sum(points) filter (where level1 = 'operations'), 0) as operations_score,
           coalesce(sum(points) filter (where level1 = 'social'), 0) as social_score
    from {{ ref('int_indicator_points') }}
    group by uscc, model_version
),
grades as (select * from {{ ref('scoring_grades') }}),
computed as (
    select distinct on (s.uscc) s.uscc, g.grade, g.grade_rank
    from scores s join grades g on g.model_version = s.model_version and g.min_total <= s.total_score
    order by s.uscc, g.min_total desc
),
worst_cap as (  -- the most severe cap: worst grade, then precedence
    select distinct on (c.uscc) c.uscc, c.cap_code, g.grade, g.grade_rank
    from {{ ref('int_caps') }} c join grades g on g.model_version = c.model_version and g.grade = c.grade
    where not c.excluded
    order by c.uscc, g.grade_rank desc, c.precedence
)
select {{ eval_date() }} as evaluation_date, p.uscc, p.enterprise_name, p.legal_rep_name, p.region_code,
       p.industry_code, p.is_leading, s.model_version, s.total_score::integer as total_score,
       case when wc.grade_rank > cg.grade_rank then wc.grade else cg.grade end as grade,
       cg.grade as computed_grade, wc.cap_code as cap_reason,
       s.basic_score::integer as basic_score, s.operations_score::integer as operations_score,
       s.social_score::integer as social_score
from {{ ref('int_population') }} p
join scores s using (uscc)
left join computed cg using (uscc)
left join worst_cap wc using (uscc)
