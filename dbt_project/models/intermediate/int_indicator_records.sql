-- One row per record counted by a deduct or bonus indicator on D, with the item its points are looked
-- up by (scoring_record_points) and whether an open objection targets it.
with pop as (select uscc, legal_rep_id_no from {{ ref('int_population') }}),
debtors as ({{ counted_records('dishonest_debtors') }}),
penalties as ({{ counted_records('penalties') }}),
abnormal as ({{ counted_records('abnormal_operations') }}),
performance as ({{ counted_records('performance_records') }}),
accidents as ({{ counted_records('safety_accidents') }}),
records as (
    -- B4: the legal representative's person listing, active on D
    select p.uscc, 'B4' as indicator_code, 'dishonest_debtors' as resource, d.record_id, 'active' as item, d.under_objection
    from debtors d join pop p on d.subject_type = 'person' and d.subject_id = p.legal_rep_id_no
    where {{ active_on_d() }}
    union all
    -- O7: penalties in publicity on D (decided_on <= D <= publicity_until)
    select uscc, 'O7', 'penalties', record_id, severity, under_objection
    from penalties
    where decided_on <= {{ eval_date() }} and publicity_until >= {{ eval_date() }}
    union all
    -- O8: enterprise dishonest-debtor listings active on D, else removed within the window
    select subject_id, 'O8', 'dishonest_debtors', record_id,
           case when {{ active_on_d() }} then 'active' else 'removed' end, under_objection
    from debtors
    where subject_type = 'enterprise'
      and ({{ active_on_d() }} or {{ within_window('removed_on', 'O8') }})
    union all
    -- O9: abnormal-operations listings active on D, else removed within the window
    select uscc, 'O9', 'abnormal_operations', record_id,
           case when {{ active_on_d() }} then 'active' else 'removed' end, under_objection
    from abnormal
    where {{ active_on_d() }} or {{ within_window('removed_on', 'O9') }}
    union all
    -- O10: performance records occurred within the window: by kind while unsettled on D, else 'settled'
    select uscc, 'O10', 'performance_records', record_id,
           case when settled_on is null or settled_on > {{ eval_date() }} then kind else 'settled' end, under_objection
    from performance
    where {{ within_window('occurred_on', 'O10') }}
    union all
    -- O11: patents (with confirmed self-reports) granted within the window
    select uscc, 'O11', origin, record_id, patent_type, false
    from {{ ref('int_patents') }}
    where {{ within_window('granted_on', 'O11') }}
    union all
    -- S4: safety accidents occurred within the window
    select uscc, 'S4', 'safety_accidents', record_id, level, under_objection
    from accidents
    where {{ within_window('occurred_on', 'S4') }}
    union all
    -- S5: honors (with confirmed self-reports) awarded within the window and still valid on D
    select uscc, 'S5', origin, record_id, level, false
    from {{ ref('int_honors') }}
    where {{ within_window('awarded_on', 'S5') }} and (valid_until is null or valid_until >= {{ eval_date() }})
)
select r.*
from records r
where r.uscc in (select uscc from pop)
