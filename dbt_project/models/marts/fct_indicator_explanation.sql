-- Every point explained (issue 14): one row per graded enterprise, indicator and what moved its points on D,
-- read from the rows the scoring itself sums, never from a rule of its own (contract: the yml). item_kind:
--   base       deduct: the maximum the indicator starts from; bonus: 0
--   band, category, missing   the band ([lower,upper)) or category the feature fell in, or the feature is
--              missing: the indicator's points
--   record     a record a deduct or bonus rule counts: a deduction negative, a bonus positive; one an approved
--              repair or upheld objection took out moved 0, excluded, and excluded_by names the decision
--   floor, ceiling   what the records moved beyond the indicator's range (deductions past 0, bonuses past
--              the maximum): the rest of int_indicator_points.points once base and records are counted
--   cap        (no indicator) a listing active on D that caps the grade (一票否决), or would have but was
--              excluded; item = the cap; 0 points
-- Per enterprise and indicator the rows sum to the indicator's points (tests/singular/indicator_explanation_rows_valid.sql).
with indicators as (
    select indicator_code, method from {{ ref('int_scoring_indicators') }}
),
scores as (
    select p.uscc, p.model_version, p.indicator_code, p.points, p.basis, i.method,
           case i.method when 'deduct' then p.max_points else 0 end as base
    from {{ ref('int_indicator_points') }} p
    join indicators i using (indicator_code)
),
records as (
    select r.uscc, r.indicator_code, r.item, r.resource, r.record_id, r.record_date, r.under_objection,
           r.excluded, r.excluded_by,
           case when r.excluded then 0 when i.method = 'deduct' then -r.points else r.points end as points
    from {{ ref('int_indicator_records') }} r
    join indicators i using (indicator_code)
),
moved as (
    select uscc, indicator_code, sum(points) as points from records group by uscc, indicator_code
),
explanation as (
    select uscc, model_version, indicator_code,
           case when method in ('deduct', 'bonus') then 'base' when basis is null then 'missing' else method end
               as item_kind,
           basis as item, null::text as resource, null::text as record_key, null::date as record_date,
           case when method in ('deduct', 'bonus') then base else points end as points,
           false as under_objection, false as excluded, null::text as excluded_by
    from scores
    union all
    select r.uscc, s.model_version, r.indicator_code, 'record', r.item, r.resource, r.record_id, r.record_date,
           r.points, r.under_objection, r.excluded, r.excluded_by
    from records r
    join scores s using (uscc, indicator_code)
    union all
    select s.uscc, s.model_version, s.indicator_code, case s.method when 'deduct' then 'floor' else 'ceiling' end,
           null, null, null, null, s.points - s.base - m.points, false, false, null
    from scores s
    join moved m using (uscc, indicator_code)
    where s.method in ('deduct', 'bonus') and s.points <> s.base + m.points
    union all
    select uscc, model_version, null, 'cap', cap_code, resource, record_id, listed_on, 0, under_objection,
           excluded, excluded_by
    from {{ ref('int_caps') }}
)
select {{ eval_date() }} as evaluation_date, uscc, model_version, indicator_code, item_kind, item, resource,
       record_key, record_date, points::integer as points, under_objection, excluded, excluded_by
from explanation
