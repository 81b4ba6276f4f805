-- fct_indicator_explanation in one pass over it: every (enterprise, indicator) of fct_indicator_score whose
-- explanation rows do not sum to its points, or have not exactly one base/band/category/missing row, or a
-- floor that is not a deduct indicator floored at 0 by it (points 0, floor > 0) or a ceiling that is not a bonus
-- indicator held at its maximum by it (points = max, ceiling < 0); explanation rows of no score; malformed
-- rows (unknown kind, a cap row with an indicator or another row without one, a record or cap row that names
-- no record, an excluded row that moved points or names no decision); and every evaluation whose cap_reason
-- no counted cap row names, or with a counted cap row but no cap_reason.
with explained as (
    select uscc, indicator_code, sum(points) as points,
           count(*) filter (where item_kind in ('base', 'band', 'category', 'missing')) as bases,
           sum(points) filter (where item_kind = 'floor') as floor_points,
           sum(points) filter (where item_kind = 'ceiling') as ceiling_points,
           count(*) filter (where item_kind not in ('base', 'band', 'category', 'missing', 'record', 'floor', 'ceiling', 'cap')
                               or (item_kind = 'cap') = (indicator_code is not null)
                               or (item_kind in ('record', 'cap') and (resource is null or record_key is null))
                               or (excluded and (points <> 0 or excluded_by is null))) as malformed,
           array_agg(item) filter (where item_kind = 'cap' and not excluded) as caps
    from {{ ref('fct_indicator_explanation') }}
    group by uscc, indicator_code
),
indicators as (
    select coalesce(s.uscc, x.uscc) as uscc, coalesce(s.indicator_code, x.indicator_code) as indicator_code,
           case when x.uscc is null then 'no explanation rows'
                when s.uscc is null then 'explanation rows of no indicator score'
                when x.malformed > 0 then x.malformed || ' malformed rows'
                when x.points is distinct from s.points then 'rows sum to ' || x.points || ', not ' || s.points
                when x.bases <> 1 then x.bases || ' base/band/category/missing rows'
                when x.floor_points is not null and not (s.points = 0 and x.floor_points > 0) then 'floor ' || x.floor_points
                when x.ceiling_points is not null and not (s.points = s.max_points and x.ceiling_points < 0)
                     then 'ceiling ' || x.ceiling_points
           end as problem
    from {{ ref('fct_indicator_score') }} s
    full join (select * from explained where indicator_code is not null) x
           on x.uscc = s.uscc and x.indicator_code = s.indicator_code
),
caps as (
    select coalesce(e.uscc, x.uscc) as uscc, null::text as indicator_code,
           case when e.uscc is null then 'cap rows of no evaluation'
                when x.malformed > 0 then x.malformed || ' malformed cap rows'
                when e.cap_reason is not null and not coalesce(e.cap_reason = any(x.caps), false)
                     then 'cap_reason ' || e.cap_reason || ' names no counted cap row'
                when e.cap_reason is null and x.caps is not null then 'counted cap rows but no cap_reason'
           end as problem
    from {{ ref('fct_enterprise_evaluation') }} e
    full join (select * from explained where indicator_code is null) x on x.uscc = e.uscc
)
select * from indicators where problem is not null
union all
select * from caps where problem is not null
