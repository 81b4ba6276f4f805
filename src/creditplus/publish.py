"""Publish one night's marts to every channel at once (spec: publication-channels.md).

A publication is a frozen copy of ``marts.fct_enterprise_evaluation`` and
``marts.fct_indicator_score`` for date D in ``publication.enterprise_evaluation`` /
``publication.indicator_score``, with a row in ``audit.publications``. The copy and the
switch of ``audit.publications.is_current`` happen in one transaction, so a reader sees the
previous publication until the commit and the new one, whole, after it. Publications are
never changed or deleted: together they are the history of what was published when.
"""
from __future__ import annotations

import datetime as dt

import psycopg
from psycopg import sql

from creditplus import warehouse

# publication table -> the mart it copies (the same columns after publication_id).
SOURCES = {"enterprise_evaluation": "fct_enterprise_evaluation", "indicator_score": "fct_indicator_score"}


class PublicationError(RuntimeError):
    """The marts for the date cannot be published; nothing was changed."""


def publish(evaluation_date: dt.date, *, warehouse_url: str | None = None, run_id: str,
            published_by: str = "credit_nightly") -> int:
    """Copy the marts for ``evaluation_date`` into a new publication, make it current, return its id.

    Re-publishing a date (a rerun) makes a new publication of it current; the earlier ones
    stay in the history and ``previous_grade`` still comes from an earlier date.
    """
    with warehouse.connect(warehouse_url) as conn, conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('creditplus.publish'))")
        model_version = _model_version(conn, evaluation_date)
        publication_id = conn.execute(
            "insert into audit.publications (evaluation_date, model_version, run_id, published_by,"
            " enterprise_count, indicator_count) values (%s, %s, %s, %s, 0, 0) returning publication_id",
            (evaluation_date, model_version, run_id, published_by)).fetchone()[0]
        counts = {table: _copy(conn, table, publication_id, evaluation_date) for table in SOURCES}
        if not counts["indicator_score"]:
            raise PublicationError(f"marts.fct_indicator_score has no rows for {evaluation_date}; nothing published")
        conn.execute("update audit.publications set is_current = false where is_current")
        conn.execute("update audit.publications set is_current = true, enterprise_count = %s, indicator_count = %s"
                     " where publication_id = %s",
                     (counts["enterprise_evaluation"], counts["indicator_score"], publication_id))
    return publication_id


def _model_version(conn: psycopg.Connection, evaluation_date: dt.date) -> str:
    """The one model version of the evaluation mart's rows for the date; refuses a missing or empty mart."""
    try:
        versions = conn.execute(
            "select distinct model_version from marts.fct_enterprise_evaluation where evaluation_date = %s",
            (evaluation_date,)).fetchall()
    except psycopg.errors.UndefinedTable:
        raise PublicationError("marts.fct_enterprise_evaluation does not exist (has dbt built the marts?); "
                               "nothing published") from None
    if not versions:
        raise PublicationError(f"marts.fct_enterprise_evaluation has no rows for {evaluation_date}; nothing published")
    if len(versions) > 1:
        raise PublicationError(f"marts.fct_enterprise_evaluation mixes model versions for {evaluation_date}: "
                               f"{sorted(v for (v,) in versions)}; nothing published")
    return versions[0][0]


def _copy(conn: psycopg.Connection, table: str, publication_id: int, evaluation_date: dt.date) -> int:
    """Copy the mart rows of the date into ``publication.<table>``; the number of rows copied."""
    columns = [sql.Identifier(name) for (name,) in conn.execute(
        "select column_name from information_schema.columns where table_schema = 'publication'"
        " and table_name = %s and column_name <> 'publication_id' order by ordinal_position", (table,))]
    mart = sql.Identifier("marts", SOURCES[table])
    statement = sql.SQL("insert into {target} (publication_id, {cols}) select %s, {cols} from {mart}"
                        " where evaluation_date = %s").format(
        target=sql.Identifier("publication", table), cols=sql.SQL(", ").join(columns), mart=mart)
    try:
        return conn.execute(statement, (publication_id, evaluation_date)).rowcount
    except psycopg.errors.UndefinedTable:
        raise PublicationError(f"{mart.as_string(conn)} does not exist (has dbt built the marts?); "
                               "nothing published") from None
    except (psycopg.errors.UndefinedColumn, psycopg.errors.IntegrityError) as exc:
        raise PublicationError(f"{mart.as_string(conn)} for {evaluation_date} breaks the mart contract "
                               f"({exc.diag.message_primary}); nothing published") from exc
