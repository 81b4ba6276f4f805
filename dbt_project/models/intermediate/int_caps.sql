-- The caps (一票否决) that apply to each graded enterprise on D: a counted listing of the cap's
-- resource active on D.
select distinct l.uscc, c.model_version, c.cap_code, c.grade, c.precedence
from {{ ref('int_active_listings') }} l
join {{ ref('scoring_caps') }} c on c.resource = l.resource
join {{ ref('int_scoring_version') }} v using (model_version)
where l.uscc in (select uscc from {{ ref('int_population') }})
