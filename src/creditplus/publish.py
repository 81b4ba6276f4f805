"""Publish one night's marts to every channel at once (spec: publication-channels.md).

A publication is a frozen copy of ``marts.fct_enterprise_evaluation``, ``marts.fct_indicator_score`` and
``marts.fct_indicator_explanation`` for date D in ``publication.enterprise_evaluation`` /
``publication.indicator_score`` / ``publication.indicator_explanation`` (``SOURCES``), with a row in
``audit.publications``. The copy and the switch of ``audit.publications.is_current`` happen in one
transaction, so a reader sees the previous publication until the commit and the new one, whole, after
it. Publications are never changed or deleted: together they are the history of what was published when.

In the same transaction a publication records what it changed (tables of sql/setup/060_channels.sql
and 070_monitoring.sql): ``regulator.notifications`` for decisions (marts.fct_rights_decisions) not
seen before whose enterprise's grade or score differs from the previously current publication, new
``supply_chain.risk_warnings`` (marts.fct_supply_chain_signals, and grade falls of a partner against
the previous publication) and the per-leading-enterprise ``supply_chain.partner_summary``.
``credit_office.objection_sla`` is replaced by the date's ``marts.fct_objection_sla``, and the
publication keeps the night's ``marts.fct_unresolved_references`` for ``credit_office.unresolved_references``.
``republish`` replaces just some enterprises' rows of the current publication (re-evaluation) and keeps
its unresolved references.
"""
from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Collection

import psycopg
from psycopg import sql

from creditplus import warehouse

log = logging.getLogger(__name__)

# publication table -> the mart it copies (the same columns after publication_id).
SOURCES = {"enterprise_evaluation": "fct_enterprise_evaluation", "indicator_score": "fct_indicator_score",
           "indicator_explanation": "fct_indicator_explanation"}


class PublicationError(RuntimeError):
    """The marts for the date cannot be published; nothing was changed."""


def publish(evaluation_date: dt.date, *, warehouse_url: str | None = None, run_id: str,
            published_by: str = "credit_nightly") -> int:
    """Copy the marts for ``evaluation_date`` into a new publication, make it current, return its id.

    Re-publishing a date (a rerun) makes a new publication of it current; the earlier ones
    stay in the history and ``previous_grade`` still comes from an earlier date.
    """
    with warehouse.connect(warehouse_url) as conn, conn.transaction():
        previous = _lock_current(conn)
        publication_id = _new_publication(conn, evaluation_date, run_id, published_by)
        counts = {table: _copy(conn, table, publication_id, evaluation_date) for table in SOURCES}
        _make_current(conn, publication_id, counts, evaluation_date)
        _monitor(conn, publication_id, previous and previous[0], evaluation_date)
    return publication_id


def republish(usccs: Collection[str], *, warehouse_url: str | None = None, run_id: str,
              published_by: str = "credit_reevaluation", schema_suffix: str = "") -> int:
    """A new current publication of the current evaluation date: the current rows, with the rows of
    ``usccs`` replaced by those of the marts in ``marts<schema_suffix>`` (a re-evaluation builds its own;
    an enterprise no longer in the marts is dropped); return its id."""
    usccs, marts_schema = sorted(set(usccs)), "marts" + schema_suffix
    with warehouse.connect(warehouse_url) as conn, conn.transaction():
        previous = _lock_current(conn)
        if previous is None:
            raise PublicationError("nothing is published yet; run the nightly evaluation first")
        current_id, evaluation_date = previous
        publication_id = _new_publication(conn, evaluation_date, run_id, published_by, marts_schema)
        counts = {table: _copy(conn, table, publication_id, evaluation_date, usccs, marts_schema)
                  + _carry(conn, table, publication_id, current_id, usccs) for table in SOURCES}
        _make_current(conn, publication_id, counts, evaluation_date)
        _monitor(conn, publication_id, current_id, evaluation_date, usccs, marts_schema)
    return publication_id


def rollback(*, warehouse_url: str | None = None, to: int | None = None) -> tuple[tuple, tuple]:
    """Make an earlier publication current again (default: the one made just before the current one), in one
    transaction: every channel switches at commit; nothing is deleted, the switch is kept in
    ``audit.publication_rollbacks``. Notices and warnings already sent stay; ``credit_office.objection_sla``
    keeps the latest list (deadlines do not depend on the grades). Returns the (id, date) left and taken."""
    with warehouse.connect(warehouse_url) as conn, conn.transaction():
        current = _lock_current(conn)
        if current is None:
            raise PublicationError("nothing is published yet; nothing to roll back")
        target = conn.execute(
            "select publication_id, evaluation_date from audit.publications where publication_id ="
            " coalesce(%s, (select max(publication_id) from audit.publications where publication_id < %s))",
            (to, current[0])).fetchone()
        if target is None:
            raise PublicationError(f"publication {to} does not exist" if to else
                                   f"publication {current[0]} is the first one; nothing to roll back to")
        if target[0] == current[0]:
            raise PublicationError(f"publication {to} is already current")
        _switch_current(conn, target[0])
        conn.execute("insert into audit.publication_rollbacks (from_publication, to_publication) values (%s, %s)",
                     (current[0], target[0]))
    return current, target


def rollback_command(args) -> int:
    """``creditplus publication rollback [--to ID]``."""
    from creditplus.errors import UserError

    try:
        (left, left_day), (taken, taken_day) = rollback(to=args.to)
    except PublicationError as exc:
        raise UserError(str(exc)) from None
    print(f"publication: every channel now reads publication {taken} (evaluation date {taken_day}); "
          f"publication {left} ({left_day}) stays in the history")
    return 0


def list_command(args) -> int:
    """``creditplus publication list``: the latest publications, the current one marked."""
    with warehouse.connect() as conn:
        rows = conn.execute("select publication_id, evaluation_date, model_version, published_by, published_at,"
                            " enterprise_count, is_current from audit.publications"
                            " order by publication_id desc limit %s", (args.limit,)).fetchall()
    if not rows:
        print("publication: nothing is published yet")
    for pid, day, version, by, at, count, current in rows:
        print(f"{'*' if current else ' '} {pid:>6}  {day}  {version:<4} {count:>8} enterprises  "
              f"{at:%Y-%m-%d %H:%M:%S%z}  {by}")
    return 0


def _lock_current(conn: psycopg.Connection) -> tuple[int, dt.date] | None:
    """Serialise publications; the current publication's id and evaluation date (None before the first)."""
    conn.execute("select pg_advisory_xact_lock(hashtext('creditplus.publish'))")
    return conn.execute("select publication_id, evaluation_date from audit.publications where is_current").fetchone()


def _new_publication(conn: psycopg.Connection, evaluation_date: dt.date, run_id: str, published_by: str,
                     marts_schema: str = "marts") -> int:
    model_version = _model_version(conn, evaluation_date, marts_schema)
    return conn.execute(
        "insert into audit.publications (evaluation_date, model_version, run_id, published_by,"
        " enterprise_count, indicator_count) values (%s, %s, %s, %s, 0, 0) returning publication_id",
        (evaluation_date, model_version, run_id, published_by)).fetchone()[0]


def _make_current(conn: psycopg.Connection, publication_id: int, counts: dict[str, int],
                  evaluation_date: dt.date) -> None:
    if not counts["indicator_score"]:
        raise PublicationError(f"marts.fct_indicator_score has no rows for {evaluation_date}; nothing published")
    conn.execute("update audit.publications set enterprise_count = %s, indicator_count = %s where publication_id = %s",
                 (counts["enterprise_evaluation"], counts["indicator_score"], publication_id))
    _switch_current(conn, publication_id)
    # Statistics that know the new publication's rows (ANALYZE sees this transaction's own): planned
    # without them, the comparisons with the previous publication nest loops over 100,000 x 100,000
    # rows (13 minutes, not 0.5 s, at 100,000 enterprises on PostgreSQL 16).
    conn.execute("analyze publication.enterprise_evaluation")


def _switch_current(conn: psycopg.Connection, publication_id: int) -> None:
    """Make ``publication_id`` the one current publication, in the caller's transaction (every channel reads
    it from the commit on)."""
    conn.execute("update audit.publications set is_current = false where is_current")
    conn.execute("update audit.publications set is_current = true where publication_id = %s", (publication_id,))


def _model_version(conn: psycopg.Connection, evaluation_date: dt.date, marts_schema: str = "marts") -> str:
    """The one model version of the evaluation mart's rows for the date; refuses a missing or empty mart."""
    mart, name = sql.Identifier(marts_schema, "fct_enterprise_evaluation"), f"{marts_schema}.fct_enterprise_evaluation"
    try:
        versions = conn.execute(sql.SQL("select distinct model_version from {} where evaluation_date = %s").format(mart),
                                (evaluation_date,)).fetchall()
    except psycopg.errors.UndefinedTable:
        raise PublicationError(f"{name} does not exist (has dbt built the marts?); nothing published") from None
    if not versions:
        raise PublicationError(f"{name} has no rows for {evaluation_date}; nothing published")
    if len(versions) > 1:
        raise PublicationError(f"{name} mixes model versions for {evaluation_date}: "
                               f"{sorted(v for (v,) in versions)}; nothing published")
    return versions[0][0]


def _copy(conn: psycopg.Connection, table: str, publication_id: int, evaluation_date: dt.date,
          usccs: list[str] | None = None, marts_schema: str = "marts") -> int:
    """Copy the mart rows of the date (of ``usccs`` only, when given) into ``publication.<table>``;
    the number of rows copied."""
    mart = sql.Identifier(marts_schema, SOURCES[table])
    statement = sql.SQL("insert into {target} (publication_id, {cols}) select %s, {cols} from {mart}"
                        " where evaluation_date = %s and (%s::text[] is null or uscc = any(%s))").format(
        target=sql.Identifier("publication", table), cols=_columns(conn, table), mart=mart)
    try:
        return conn.execute(statement, (publication_id, evaluation_date, usccs, usccs)).rowcount
    except psycopg.errors.UndefinedTable:
        raise PublicationError(f"{mart.as_string(conn)} does not exist (has dbt built the marts?); "
                               "nothing published") from None
    except (psycopg.errors.UndefinedColumn, psycopg.errors.IntegrityError) as exc:
        raise PublicationError(f"{mart.as_string(conn)} for {evaluation_date} breaks the mart contract "
                               f"({exc.diag.message_primary}); nothing published") from exc


def _carry(conn: psycopg.Connection, table: str, publication_id: int, from_publication: int,
           except_usccs: list[str]) -> int:
    """Copy the rows of another publication, except those of ``except_usccs``; the number of rows copied."""
    statement = sql.SQL("insert into {target} (publication_id, {cols}) select %s, {cols} from {target}"
                        " where publication_id = %s and uscc <> all(%s)").format(
        target=sql.Identifier("publication", table), cols=_columns(conn, table))
    return conn.execute(statement, (publication_id, from_publication, except_usccs)).rowcount


def _columns(conn: psycopg.Connection, table: str) -> sql.Composable:
    """The columns of ``publication.<table>`` after publication_id (those of its mart, in order)."""
    return sql.SQL(", ").join(sql.Identifier(name) for (name,) in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'publication'"
        " and table_name = %s and column_name <> 'publication_id' order by ordinal_position", (table,)))


# ---------------------------------------------------------------- notices, warnings, summary
# Each statement takes %(p)s (the new publication), %(c)s (the previously current one, null before the first),
# %(d)s (its evaluation date) and %(usccs)s (the re-evaluated enterprises, null for a whole night).
NOTICES = sql.SQL("""
with new_decisions as (
    insert into publication.rights_decisions_seen (source_resource, source_id, uscc, reason, decided_on, publication_id)
    select source_resource, source_id, uscc, reason, decided_on, %(p)s from {marts}.fct_rights_decisions
     where evaluation_date = %(d)s and (%(usccs)s::text[] is null or uscc = any(%(usccs)s))
    on conflict do nothing
    returning uscc, reason
)
insert into publication.regulator_notifications
       (uscc, reason, old_grade, new_grade, old_score, new_score, evaluation_date, publication_id)
select n.uscc, n.reason, old.grade, new.grade, old.total_score, new.total_score, %(d)s, %(p)s
  from (select distinct uscc, reason from new_decisions) n
  join publication.enterprise_evaluation new on new.publication_id = %(p)s and new.uscc = n.uscc
  join publication.enterprise_evaluation old on old.publication_id = %(c)s and old.uscc = n.uscc
 where (old.grade, old.total_score) is distinct from (new.grade, new.total_score)
 order by n.uscc, n.reason
""")

# Grade falls (to D or E, or by two grades or more: grades are the letters A..E in order) of a partner
# between the previous and the new publication, with the record-level signals of the marts.
WARNINGS = sql.SQL("""
with grade_falls as (
    select l.link_id, l.leading_uscc, l.partner_uscc, l.relation, l.share_pct,
           case new.grade when 'E' then 'grade_fell_to_e' when 'D' then 'grade_fell_to_d'
                else 'grade_fell_two_or_more' end as warning_type,
           format('%%s>%%s@%%s', old.grade, new.grade, %(d)s::date) as warning_key,
           format('grade %%s -> %%s, score %%s -> %%s', old.grade, new.grade, old.total_score, new.total_score)
               as detail
      from {marts}.fct_supply_chain_links l
      join publication.enterprise_evaluation new on new.publication_id = %(p)s and new.uscc = l.partner_uscc
      join publication.enterprise_evaluation old on old.publication_id = %(c)s and old.uscc = l.partner_uscc
     where l.evaluation_date = %(d)s
       and strpos('ABCDE', new.grade) > strpos('ABCDE', old.grade)
       and (new.grade in ('D', 'E') or strpos('ABCDE', new.grade) - strpos('ABCDE', old.grade) >= 2)
),
signals as (
    select link_id, leading_uscc, partner_uscc, relation, share_pct, warning_type, warning_key, detail
      from {marts}.fct_supply_chain_signals where evaluation_date = %(d)s
    union all
    select * from grade_falls
)
insert into publication.supply_chain_risk_warnings
       (leading_uscc, partner_uscc, relation, warning_type, severity, detected_on, detail, warning_key, publication_id)
select distinct on (s.leading_uscc, s.partner_uscc, s.relation, s.warning_type, s.warning_key)
       s.leading_uscc, s.partner_uscc, s.relation, s.warning_type,
       publication.warning_severity(t.base_level, s.share_pct), %(d)s, s.detail, s.warning_key, %(p)s
  from signals s join publication.warning_types t using (warning_type)
 where %(usccs)s::text[] is null or s.partner_uscc = any(%(usccs)s)
 order by s.leading_uscc, s.partner_uscc, s.relation, s.warning_type, s.warning_key, s.share_pct desc
    on conflict (leading_uscc, partner_uscc, relation, warning_type, warning_key) do nothing
""")

# High-risk partner: graded D or E in the new publication, or a signal of base level 3 or more on the date.
SUMMARY = sql.SQL("""
with high_risk as (
    select distinct s.partner_uscc from {marts}.fct_supply_chain_signals s
      join publication.warning_types t using (warning_type)
     where s.evaluation_date = %(d)s and t.base_level >= 3
)
insert into publication.supply_chain_summary
       (publication_id, evaluation_date, leading_uscc, partners, share_weighted_score, high_risk_partners, new_warnings)
select %(p)s, %(d)s, l.leading_uscc, count(distinct l.partner_uscc),
       round(coalesce(sum(l.share_pct * e.total_score) / nullif(sum(l.share_pct) filter (where e.uscc is not null), 0),
                      avg(e.total_score)), 1),
       count(distinct l.partner_uscc) filter (where e.grade in ('D', 'E') or h.partner_uscc is not null),
       (select count(*) from publication.supply_chain_risk_warnings w
         where w.leading_uscc = l.leading_uscc and w.detected_on = %(d)s)
  from {marts}.fct_supply_chain_links l
  left join publication.enterprise_evaluation e on e.publication_id = %(p)s and e.uscc = l.partner_uscc
  left join high_risk h on h.partner_uscc = l.partner_uscc
 where l.evaluation_date = %(d)s
 group by l.leading_uscc
""")

# The credit office's objection deadlines (第十四条) as of the published date: the whole list is replaced.
OBJECTION_SLA = (sql.SQL("delete from publication.objection_sla"), sql.SQL("""
insert into publication.objection_sla
       (objection_id, uscc, submitted_at, due_on, status, resolved_at, working_days_used, overdue,
        deadline_confirmed)
select objection_id, uscc, submitted_at, due_on, status, resolved_at, working_days_used, overdue,
       deadline_confirmed
  from {marts}.fct_objection_sla where evaluation_date = %(d)s
"""))

# The night's unresolved references for the credit office (a re-evaluation keeps the current publication's).
# A uscc field is checked at load by its GB 32100 check character only, which one resident ID number in 31
# passes: a reference that looks like one (region, birth date, sequence, check) is withheld.
UNRESOLVED = sql.SQL(r"""
insert into publication.unresolved_references
       (publication_id, evaluation_date, resource, record_key, reference, reason, detail)
select %(p)s, evaluation_date, resource, record_key,
       case when reference ~ '[1-9]\d{{5}}(18|19|20)\d{{2}}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{{3}}[\dXx]'
            then '(withheld: looks like a resident ID number)' else reference end,
       reason, detail
  from {marts}.fct_unresolved_references where evaluation_date = %(d)s and %(usccs)s::text[] is null
union all
select %(p)s, evaluation_date, resource, record_key, reference, reason, detail
  from publication.unresolved_references where publication_id = %(c)s and %(usccs)s::text[] is not null
""")

# (statements, the marts they read from the schema {marts})
MONITORING = (((NOTICES,), ("fct_rights_decisions",)),
              (OBJECTION_SLA, ("fct_objection_sla",)),
              ((WARNINGS,), ("fct_supply_chain_links", "fct_supply_chain_signals")),
              ((SUMMARY,), ("fct_supply_chain_links", "fct_supply_chain_signals")),
              ((UNRESOLVED,), ("fct_unresolved_references",)))


def _monitor(conn: psycopg.Connection, publication_id: int, previous_id: int | None, evaluation_date: dt.date,
             usccs: list[str] | None = None, marts_schema: str = "marts") -> None:
    """Write the publication's notices, new warnings and summary from the marts in ``marts_schema`` (a step
    whose marts were not built is skipped with a warning: a project without the notices/supply_chain models)."""
    params = {"p": publication_id, "c": previous_id, "d": evaluation_date, "usccs": usccs}
    for statements, marts in MONITORING:
        missing = [m for m in marts if conn.execute("select to_regclass(%s)", (f"{marts_schema}.{m}",)).fetchone()[0]
                   is None]
        if missing:
            log.warning("publication %s: marts %s not built; step skipped", publication_id, ", ".join(missing))
            continue
        for statement in statements:
            conn.execute(statement.format(marts=sql.Identifier(marts_schema)), params)
