-- The indicator catalogue of the scoring model version used for D (one row per indicator).
select i.model_version, i.indicator_code, i.name_zh, i.name_en, i.level1, i.direction, i.method,
       i.max_points, i.missing_points, i.time_window, i.sort_order
from {{ ref('scoring_indicators') }} i
join {{ ref('int_scoring_version') }} v using (model_version)
