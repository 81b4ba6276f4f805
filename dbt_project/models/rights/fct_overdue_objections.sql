-- Open objections past their deadline on the evaluation date: the night report's warning list.
select
    objection_id,
    uscc,
    submitted_at,
    due_on,
    status,
    working_days_used,
    deadline_confirmed,
    evaluation_date
from {{ ref('fct_objection_sla') }}
where overdue
    and status in ('submitted', 'processing')
