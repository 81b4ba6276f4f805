-- Each calendar date with the running count of working days (and of unconfirmed days) up to and
-- including it. Working days in (a, b] = workdays_through(b) - workdays_through(a); the n-th working
-- day after a is the workday whose workdays_through = workdays_through(a) + n.
select
    calendar_date,
    is_workday,
    confirmed,
    count(*) filter (where is_workday) over (order by calendar_date)::integer as workdays_through,
    count(*) filter (where not confirmed) over (order by calendar_date)::integer as unconfirmed_through
from {{ ref('work_calendar') }}
