-- Records under an open objection (submitted/processing) as known on D: they still count, flagged.
select distinct target_resource as resource, target_record_id as record_id
from {{ ref('stg_objections') }}
where status in ('submitted', 'processing')
