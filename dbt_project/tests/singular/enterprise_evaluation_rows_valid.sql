-- fct_enterprise_evaluation in two passes instead of one test per column: a duplicate uscc (one
-- evaluation date per build, so also (evaluation_date, uscc)); level-1 scores not summing to the total;
-- a negative total; a grade or computed grade outside A-E; an unknown cap. (not null: the contract.)
select uscc, 'duplicate uscc' as problem
from {{ ref('fct_enterprise_evaluation') }}
group by uscc
having count(*) > 1 or count(distinct evaluation_date) > 1
union all
select uscc,
       case when not coalesce(basic_score + operations_score + social_score = total_score, false)
                 then 'level-1 scores do not sum to the total'
            when total_score < 0 then 'negative total'
            when grade not in ('A', 'B', 'C', 'D', 'E') or computed_grade not in ('A', 'B', 'C', 'D', 'E')
                 then 'grade outside A-E'
            else 'unknown cap ' || cap_reason end
from {{ ref('fct_enterprise_evaluation') }}
where not coalesce(basic_score + operations_score + social_score = total_score, false)
   or total_score < 0
   or grade not in ('A', 'B', 'C', 'D', 'E') or computed_grade not in ('A', 'B', 'C', 'D', 'E')
   or cap_reason not in ('serious_dishonesty', 'dishonest_debtor')
