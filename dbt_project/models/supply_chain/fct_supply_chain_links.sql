-- Supply-chain links of the leading enterprises valid on D (valid_from <= D, valid_to null or >= D), with
-- the partner's state on D. Links naming an enterprise the platform never sent are left out (they are
-- listed in fct_unscorable_records).
select {{ eval_date() }} as evaluation_date, l.link_id, l.leading_uscc, l.partner_uscc, l.relation,
       coalesce(l.share_pct, 0) as share_pct, p.reg_status as partner_reg_status,
       e.grade as partner_grade, e.total_score as partner_total_score
from {{ ref('stg_supply_chain_links') }} l
join {{ ref('stg_enterprises') }} lead on lead.uscc = l.leading_uscc
join {{ ref('stg_enterprises') }} p on p.uscc = l.partner_uscc
left join {{ ref('fct_enterprise_evaluation') }} e on e.uscc = l.partner_uscc
where l.valid_from <= {{ eval_date() }} and (l.valid_to is null or l.valid_to >= {{ eval_date() }})
