-- One row per record a deduct or bonus indicator counts on D, with the item its points are looked up by
-- (scoring_record_points: points, unsigned), the date the rule reads (record_date) and whether an open
-- objection targets it. A negative record an approved repair or upheld objection took out is listed too,
-- excluded (excluded_by: the decision), so that the enterprise sees why it moved nothing: whoever sums
-- points counts only `not excluded` (int_indicator_points).
with pop as (select uscc, legal_rep_id_no from {{ ref('int_population') }}),
debtors as ({{ counted_records('dishonest_debtors', with_excluded=true) }}),
penalties as ({{ counted_records('penalties', with_excluded=true) }}),
abnormal as ({{ counted_records('abnormal_operations', with_excluded=true) }}),
performance as ({{ counted_records('performance_records', with_excluded=true) }}),
accidents as ({{ counted_records('safety_accidents', with_excluded=true) }}),
records as (
    -- B4: the legal representative's person listing, active on D
    select p.uscc, 'B4' as indicator_code, 'dishonest_debtors' as resource, d.record_id, 'active' as item,
           d.listed_on as record_date, d.under_objection, d.excluded, d.excluded_by
    from debtors d join pop p on d.subject_type = 'person' and d.subject_id = p.legal_rep_id_no
    where {{ active_on_d() }}
    union all
    -- O7: penalties in publicity on D (decided_on <= D <= publicity_until)
    select uscc, 'O7', 'penalties', record_id, severity, decided_on, under_objection, excluded, excluded_by
    from penalties
    where decided_on <= {{ eval_date() }} and publicity_until >= {{ eval_date() }}
    union all
    -- O8: enterprise dishonest-debtor listings active on D, else removed within the window
    select subject_id, 'O8', 'dishonest_debtors', record_id,
           case when {{ active_on_d() }} then 'active' else 'removed' end,
           case when {{ active_on_d() }} then listed_on else removed_on end, under_objection, excluded, excluded_by
    from debtors
    where subject_type = 'enterprise'
      and ({{ active_on_d() }} or {{ within_window('removed_on', 'O8') }})
    union all
    -- O9: abnormal-operations listings active on D, else removed within the window
    select uscc, 'O9', 'abnormal_operations', record_id,
           case when {{ active_on_d() }} then 'active' else 'removed' end,
           case when {{ active_on_d() }} then listed_on else removed_on end, under_objection, excluded, excluded_by
    from abnormal
    where {{ active_on_d() }} or {{ within_window('removed_on', 'O9') }}
    union all
    -- O10: performance records occurred within the window: by kind while unsettled on D, else 'settled'
    select uscc, 'O10', 'performance_records', record_id,
           case when settled_on is null or settled_on > {{ eval_date() }} then kind else 'settled' end, occurred_on,
           under_objection, excluded, excluded_by
    from performance
    where {{ within_window('occurred_on', 'O10') }}
    union all
    -- O11: patents (with confirmed self-reports) granted within the window
    select uscc, 'O11', origin, record_id, patent_type, granted_on, false, false, null
    from {{ ref('int_patents') }}
    where {{ within_window('granted_on', 'O11') }}
    union all
    -- S4: safety accidents occurred within the window
    select uscc, 'S4', 'safety_accidents', record_id, level, occurred_on, under_objection, excluded, excluded_by
    from accidents
    where {{ within_window('occurred_on', 'S4') }}
    union all
    -- S5: honors (with confirmed self-reports) awarded within the window and still valid on D
    select uscc, 'S5', origin, record_id, level, awarded_on, false, false, null
    from {{ ref('int_honors') }}
    where {{ within_window('awarded_on', 'S5') }} and (valid_until is null or valid_until >= {{ eval_date() }})
)
select r.uscc, r.indicator_code, r.resource, r.record_id, r.item, coalesce(rp.points, 0) as points,
       r.record_date, r.under_objection, r.excluded, r.excluded_by
from records r
left join {{ ref('scoring_record_points') }} rp
    on rp.indicator_code = r.indicator_code and rp.item = r.item
   and rp.model_version = (select model_version from {{ ref('int_scoring_version') }})
where r.uscc in (select uscc from pop)
