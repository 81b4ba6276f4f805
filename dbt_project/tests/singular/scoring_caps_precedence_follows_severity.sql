-- A cap ranked before another (smaller precedence) that caps to a better grade: cap_reason names the most
-- severe cap (scoring-model-v1.md, "Grades and caps": serious_dishonesty over dishonest_debtor), and
-- precedence decides between caps to the same grade, so it must agree with their severity.
select c.model_version, c.cap_code, later.cap_code as ranked_after_it
from {{ ref('scoring_caps') }} c
join {{ ref('scoring_caps') }} later on later.model_version = c.model_version and later.precedence > c.precedence
join {{ ref('scoring_grades') }} g on g.model_version = c.model_version and g.grade = c.grade
join {{ ref('scoring_grades') }} g_later on g_later.model_version = later.model_version and g_later.grade = later.grade
where g.grade_rank < g_later.grade_rank
