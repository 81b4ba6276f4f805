-- The night's list for the credit office: objections and credit repairs aimed at a record never received,
-- supply-chain links and rights records naming an unknown enterprise (from fct_unscorable_records), and
-- self-reports of an enterprise known but not graded on D. None of them changes a score.
select evaluation_date, resource, record_key, reference, reason, detail
from {{ ref('fct_unscorable_records') }}
where resource in ('objections', 'credit_repairs', 'self_reports', 'supply_chain_links')
union all
select {{ eval_date() }}, 'self_reports', s.report_id, s.uscc, 'outside_population',
       'self-report of an enterprise that is not graded on D (reg_status ' || e.reg_status || ')'
from {{ ref('stg_self_reports') }} s
join {{ ref('stg_enterprises') }} e on e.uscc = s.uscc
where not exists (select 1 from {{ ref('int_population') }} p where p.uscc = s.uscc)
