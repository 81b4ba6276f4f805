-- Points of every indicator of the scoring model for every graded enterprise on D, by method:
-- band ([lower, upper), compared by cross-multiplying), category, deduct (max - records, floor 0),
-- bonus (records, capped at max); missing_points when the feature is unknown. basis: the band ([lower,upper))
-- or category a known feature fell in (null otherwise), for fct_indicator_explanation.
with grid as (  -- only the columns used: the grid (population x indicators) is sorted and hashed
    select p.uscc, i.model_version, i.indicator_code, i.level1, i.method, i.max_points, i.missing_points
    from {{ ref('int_population') }} p
    cross join {{ ref('int_scoring_indicators') }} i
),
records as (  -- the counted records (int_indicator_records lists the excluded ones too)
    select r.uscc, r.indicator_code, sum(r.points) as record_points, bool_or(r.under_objection) as under_objection
    from {{ ref('int_indicator_records') }} r
    where not r.excluded
    group by r.uscc, r.indicator_code
),
known as (  -- band and category points of the features known on D (joined before the grid: 1 M rows, not 2 M)
    select f.uscc, f.indicator_code, coalesce(b.points, c.points) as points,
           case when b.indicator_code is not null
                then case when b.lower_bound is null then '(-∞' else '[' || b.lower_bound end || ','
                     || coalesce(b.upper_bound::text, '∞') || ')'
                else c.category end as basis
    from {{ ref('int_features') }} f
    left join {{ ref('scoring_bands') }} b
        on b.model_version = (select model_version from {{ ref('int_scoring_version') }})
       and b.indicator_code = f.indicator_code
       and (b.lower_bound is null or f.num >= b.lower_bound * f.den)
       and (b.upper_bound is null or f.num < b.upper_bound * f.den)
    left join {{ ref('scoring_categories') }} c
        on c.model_version = (select model_version from {{ ref('int_scoring_version') }})
       and c.indicator_code = f.indicator_code and c.category = f.category
    where f.num is not null or f.category is not null
)
select g.uscc, g.model_version, g.indicator_code, g.level1, g.max_points,
       case when g.method in ('band', 'category') then case when k.uscc is null then g.missing_points else k.points end
            when g.method = 'deduct' then greatest(0, g.max_points - coalesce(r.record_points, 0))
            when g.method = 'bonus' then least(g.max_points, coalesce(r.record_points, 0))
       end as points,
       coalesce(r.under_objection, false) as under_objection,
       k.basis
from grid g
left join known k on k.uscc = g.uscc and k.indicator_code = g.indicator_code
left join records r on r.uscc = g.uscc and r.indicator_code = g.indicator_code
