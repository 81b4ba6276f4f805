{#- SCD2 history over evaluation dates: one row per key and range [valid_from, valid_to) of evaluation
    dates over which the values did not change (valid_to null = still current). Night D writes only the
    keys whose state on D differs from the row in force on D, so storage grows with changes, not nights:
      forward night (D >= the latest evaluated date L, reruns included): the row in force is closed at D
        (or replaced when it starts on D) and the new state opens [D, null);
      backfill (D < L): the range is split: [from, D) keeps the old state, [D, D+1) gets the state
        computed for D, [D+1, to) the old one again.
    A key that leaves the current relation gets a row with graded = false (values null).
    Rerunning D computes the same rows (the archive is read as of D's cutoff): nothing is written. -#}
{% macro scd2_history(current_relation, keys, values) -%}
{%- set runs = adapter.get_relation(database=this.database, schema=this.schema, identifier='evaluation_runs') -%}
{%- set d = eval_date() -%}
{%- set hash -%} md5(row({{ values | join(', ') }})::text) {%- endset %}
with current_state as (
    select {{ keys | join(', ') }}, {{ values | join(', ') }}, true as graded, {{ hash }} as row_hash
    from {{ current_relation }}
)
{% if not is_incremental() %}
select {{ keys | join(', ') }}, {{ d }} as valid_from, null::date as valid_to, {{ values | join(', ') }}, graded, row_hash
from current_state
{% else %}
, in_force as (
    select * from {{ this }}
    where valid_from <= {{ d }} and (valid_to is null or valid_to > {{ d }})
),
changed as (
    select {% for k in keys %}coalesce(n.{{ k }}, o.{{ k }}) as {{ k }}, {% endfor %}
           {% for v in values %}n.{{ v }}, {% endfor %}
           coalesce(n.graded, false) as graded, coalesce(n.row_hash, 'not graded') as row_hash,
           o.valid_from as old_from, o.valid_to as old_to, o.graded as old_graded, o.row_hash as old_hash,
           {% for v in values %}o.{{ v }} as old_{{ v }}, {% endfor %}
           {{ d }} < coalesce((select max(evaluation_date) from {{ runs or '(select null::date as evaluation_date) r' }}), {{ d }}) as backfill
    from current_state n
    full join in_force o using ({{ keys | join(', ') }})
    where coalesce(n.row_hash, 'not graded') is distinct from coalesce(o.row_hash, 'not graded')
)
-- the old state before D
select {{ keys | join(', ') }}, old_from as valid_from, {{ d }} as valid_to,
       {% for v in values %}old_{{ v }} as {{ v }}, {% endfor %}old_graded as graded, old_hash as row_hash
from changed where old_from < {{ d }}
union all
-- the state computed for D
select {{ keys | join(', ') }}, {{ d }}, case when backfill then {{ d }} + 1 end,
       {{ values | join(', ') }}, graded, row_hash
from changed
union all
-- backfill: the old state again after D
select {{ keys | join(', ') }}, {{ d }} + 1, old_to, {% for v in values %}old_{{ v }}, {% endfor %}old_graded, old_hash
from changed where backfill and old_from is not null and (old_to is null or old_to > {{ d }} + 1)
{% endif %}
{%- endmacro %}
