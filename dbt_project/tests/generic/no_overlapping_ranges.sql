{# Rows whose [valid_from, valid_to) range overlaps the next range of the same key. #}
{% test no_overlapping_ranges(model, keys) %}
select * from (
    select {{ keys | join(', ') }}, valid_from, valid_to,
           lead(valid_from) over (partition by {{ keys | join(', ') }} order by valid_from) as next_from
    from {{ model }}
) ranges
where next_from is not null and (valid_to is null or valid_to > next_from)
{% endtest %}
