-- Decisions in force on D that re-evaluate a graded enterprise (第十四条–第十六条): an upheld objection
-- (date of resolved_at at +08:00 <= D), an approved credit repair (decided_on <= D), a confirmed
-- self-report (reviewed_on <= D). Decisions listed in fct_unresolved_references change nothing.
with decisions as (
    select 'objections' as source_resource, objection_id as source_id, uscc, 'objection_upheld' as reason,
           {{ cst_date('resolved_at') }} as decided_on
    from {{ ref('stg_objections') }}
    where status = 'upheld' and {{ cst_date('resolved_at') }} <= {{ eval_date() }}
    union all
    select 'credit_repairs', repair_id, uscc, 'credit_repair', decided_on
    from {{ ref('stg_credit_repairs') }}
    where status = 'approved' and decided_on <= {{ eval_date() }}
    union all
    select 'self_reports', report_id, uscc, 'self_report_confirmed', reviewed_on
    from {{ ref('stg_self_reports') }}
    where status = 'confirmed' and reviewed_on <= {{ eval_date() }}
)
select {{ eval_date() }} as evaluation_date, d.source_resource, d.source_id, d.uscc, d.reason, d.decided_on
from decisions d
join {{ ref('fct_enterprise_evaluation') }} e on e.uscc = d.uscc
where not exists (select 1 from {{ ref('fct_unresolved_references') }} u
                  where u.resource = d.source_resource and u.record_key = d.source_id)
