-- Tax and environmental ratings of each graded enterprise: the record with the greatest year < year(D).
{% set rating_sources = ['tax_ratings', 'environmental_ratings'] %}
with {% for r in rating_sources %}
{{ r }} as (
    select distinct on (uscc) uscc, rating
    from {{ ref('stg_' ~ r) }}
    where year < extract(year from {{ eval_date() }})
    order by uscc, year desc
),
{% endfor %}
pop as (select uscc from {{ ref('int_population') }})
select pop.uscc, t.rating as tax_rating, e.rating as environmental_rating
from pop
left join tax_ratings t using (uscc)
left join environmental_ratings e using (uscc)
where t.rating is not null or e.rating is not null
