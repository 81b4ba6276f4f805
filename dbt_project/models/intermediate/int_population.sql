-- Enterprises graded on D: reg_status active/suspended/moved_out and established_on <= D
-- (a valid uscc is guaranteed: refused versions never reach raw).
select uscc, name as enterprise_name, legal_rep_name, legal_rep_id_no, region_code, industry_code,
       coalesce(is_leading, false) as is_leading, reg_status, established_on, reg_capital_wan
from {{ ref('stg_enterprises') }}
where reg_status in ('active', 'suspended', 'moved_out')
  and established_on <= {{ eval_date() }}
