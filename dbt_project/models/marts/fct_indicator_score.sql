-- One row per graded enterprise and indicator on D (contract: see fct_indicator_score.yml).
select {{ eval_date() }} as evaluation_date, p.uscc, p.model_version, p.indicator_code,
       i.name_zh as indicator_name, i.name_en as indicator_name_en, p.level1,
       p.points::integer as points, p.max_points::integer as max_points, p.under_objection
from {{ ref('int_indicator_points') }} p
join {{ ref('int_scoring_indicators') }} i using (model_version, indicator_code)
