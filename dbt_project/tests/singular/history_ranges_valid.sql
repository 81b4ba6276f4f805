-- Both SCD2 history tables in one window pass each (instead of a unique, an overlap and a non-empty
-- test per table): per key, ranges [valid_from, valid_to) sorted by valid_from must be non-empty and
-- must not overlap the next one (a duplicate valid_from is an overlap: next_from = valid_from).
{% for rel, keys in [('evaluation_history', ['uscc']), ('indicator_history', ['uscc', 'indicator_code'])] %}
select '{{ rel }}' as history, concat_ws('|', {{ keys | join(', ') }}) as history_key, valid_from, valid_to, next_from
from (
    select {{ keys | join(', ') }}, valid_from, valid_to,
           lead(valid_from) over (partition by {{ keys | join(', ') }} order by valid_from) as next_from
    from {{ ref(rel) }}
) ranges
where (valid_to is not null and valid_to <= valid_from)
   or (next_from is not null and (valid_to is null or valid_to > next_from or next_from = valid_from))
{% if not loop.last %}union all{% endif %}
{% endfor %}
