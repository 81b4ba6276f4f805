-- Negative records that do not count on D: an approved credit repair decided on or before D (第十六条),
-- or an upheld objection whose resolved_at falls on or before D at +08:00 (第十四条); one row per decision,
-- named as resource/key (excluded_by) with the date it took effect (excluded_on).
-- (Revoked records are dropped where records are counted.)
select target_resource as resource, target_record_id as record_id, 'credit_repair' as reason,
       'credit_repairs/' || repair_id as excluded_by, decided_on as excluded_on
from {{ ref('stg_credit_repairs') }}
where status = 'approved' and decided_on <= {{ eval_date() }}
union all
select target_resource, target_record_id, 'objection_upheld',
       'objections/' || objection_id, {{ cst_date('resolved_at') }}
from {{ ref('stg_objections') }}
where status = 'upheld' and {{ cst_date('resolved_at') }} <= {{ eval_date() }}
