-- Record-level risks of the partners on D, one row per link and risk (评价细则 第一条): a counted listing
-- active on D, a counted severe penalty in publicity on D, a revoked or cancelled registration. warning_key
-- identifies the triggering record (or status), so publication warns once per link and key. Grade falls
-- need the previous publication and are found at publication (creditplus.publish).
with risks as (
    select uscc, 'listed_' || case resource when 'dishonest_debtors' then 'dishonest_debtor' else resource end
               as warning_type,
           record_id as warning_key, resource || ' record ' || record_id || ' active on D' as detail
    from {{ ref('int_active_listings') }}
    where not excluded
    union all
    select uscc, 'severe_penalty', record_id,
           'severe penalty ' || record_id || coalesce(' (' || decision_no || ')', '') || ' decided on ' || decided_on
    from ({{ counted_records('penalties') }}) p
    where severity = 'severe' and decided_on <= {{ eval_date() }} and publicity_until >= {{ eval_date() }}
    union all
    select uscc, 'deregistered', reg_status, 'registration status ' || reg_status
    from {{ ref('stg_enterprises') }}
    where reg_status in ('revoked', 'cancelled')
)
select l.evaluation_date, l.link_id, l.leading_uscc, l.partner_uscc, l.relation, l.share_pct,
       r.warning_type, r.warning_key, r.detail
from {{ ref('fct_supply_chain_links') }} l
join risks r on r.uscc = l.partner_uscc
