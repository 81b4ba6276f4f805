-- Objection deadlines (第十四条): due on the n-th working day after the +08:00 date of submission,
-- n = var objection_due_workdays (7). Counting runs to the +08:00 resolution date, or to the
-- evaluation date while the objection is open (submitted, processing).
with objections as (

    select
        objection_id,
        uscc,
        submitted_at,
        status,
        resolved_at,
        {{ cst_date('submitted_at') }} as submitted_on,
        case
            when status in ('submitted', 'processing') then {{ eval_date() }}
            else coalesce({{ cst_date('resolved_at') }}, {{ eval_date() }})
        end as counted_through
    from {{ ref('stg_objections') }}

),

calendar as (

    select * from {{ ref('int_workday_index') }}

)

select
    objections.objection_id,
    objections.uscc,
    objections.submitted_at,
    due.calendar_date as due_on,
    objections.status,
    objections.resolved_at,
    greatest(counted.workdays_through - submitted.workdays_through, 0) as working_days_used,
    objections.counted_through > due.calendar_date as overdue,
    coalesce(due.unconfirmed_through = submitted.unconfirmed_through, false) as deadline_confirmed,
    {{ eval_date() }} as evaluation_date
from objections
left join calendar as submitted
    on submitted.calendar_date = objections.submitted_on
left join calendar as due
    on due.is_workday
    and due.workdays_through = submitted.workdays_through + {{ var('objection_due_workdays', 7) }}
left join calendar as counted
    on counted.calendar_date = objections.counted_through
