-- The caps (一票否决) of each graded enterprise on D, one row per listing of the cap's resource active on D
-- (the record that sets the cap). A listing an approved repair or upheld objection took out is kept,
-- excluded (excluded_by: the decision): it caps nothing (fct_enterprise_evaluation reads `not excluded`).
select l.uscc, c.model_version, c.cap_code, c.grade, c.precedence, l.resource, l.record_id, l.listed_on,
       l.under_objection, l.excluded, l.excluded_by
from {{ ref('int_active_listings') }} l
join {{ ref('scoring_caps') }} c on c.resource = l.resource
join {{ ref('int_scoring_version') }} v using (model_version)
where l.uscc in (select uscc from {{ ref('int_population') }})
