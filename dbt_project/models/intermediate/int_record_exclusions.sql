-- Negative records that do not count on D: an approved credit repair decided on or before D (第十六条),
-- or an upheld objection whose resolved_at falls on or before D at +08:00 (第十四条).
-- (Revoked records are dropped where records are counted.)
select distinct resource, record_id, reason
from (
    select target_resource as resource, target_record_id as record_id, 'credit_repair' as reason
    from {{ ref('stg_credit_repairs') }}
    where status = 'approved' and decided_on <= {{ eval_date() }}
    union all
    select target_resource, target_record_id, 'objection_upheld'
    from {{ ref('stg_objections') }}
    where status = 'upheld' and {{ cst_date('resolved_at') }} <= {{ eval_date() }}
) exclusions
