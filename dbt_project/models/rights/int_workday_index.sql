-- Each calendar date with the running count of working days (and of unconfirmed days) up to and
-- including it. Working days in (a, b] = workdays_through(b) - workdays_through(a); the n-th working
-- day after a is the workday whose workdays_through = workdays_through(a) + n.
-- Past the seed's last date the calendar goes on provisionally (Monday to Friday working, unconfirmed)
-- to 60 days after the later of that date and the evaluation date: a deadline is always computed, and
-- marked unconfirmed, when the seed has not been extended in time.
with seed as (

    select calendar_date, is_workday, confirmed from {{ ref('work_calendar') }}

),

beyond_seed as (

    select day::date as calendar_date, extract(isodow from day) < 6 as is_workday, false as confirmed
    from (select max(calendar_date) as last_day from seed) as seed_end,
        generate_series(seed_end.last_day + 1, greatest(seed_end.last_day, {{ eval_date() }}) + 60,
                        interval '1 day') as day

),

calendar as (

    select * from seed
    union all
    select * from beyond_seed

)

select
    calendar_date,
    is_workday,
    confirmed,
    count(*) filter (where is_workday) over (order by calendar_date)::integer as workdays_through,
    count(*) filter (where not confirmed) over (order by calendar_date)::integer as unconfirmed_through
from calendar
