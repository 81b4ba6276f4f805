"""creditplus.publish against a real PostgreSQL: atomic switch, refusals, reruns, failed nights.

The marts are hand-written tables with the columns of the dbt marts' contract, dropped and
recreated each "night" the way ``dbt build`` does. The helpers here are shared by
test_channels.py and test_access.py.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import threading
import time

import psycopg
import pytest
from psycopg import sql

from conftest import portal_credential
from creditplus import channels, portal, publish as publish_module, warehouse
from creditplus.publish import PublicationError, publish, republish

D1, D2, D3 = dt.date(2026, 11, 24), dt.date(2026, 11, 25), dt.date(2026, 11, 26)
# uscc -> (name, legal representative, their resident ID number (raw only), region, industry, leading)
ENTERPRISES = {
    "91231100MA1AAAAA1A": ("黑河龙江粮油有限公司", "张伟", "230102198001011234", "231102", "C13", True),
    "91231100MA1BBBBB2B": ("黑河北疆物流有限公司", "李娜", "23010219900307123X", "231102", "G54", False),
    "91231100MA1CCCCC3C": ("爱辉区森林木业有限公司", "王强", "231102197512310018", "231102", "C20", False),
    "91231100MA1DDDDD4D": ("五大连池矿泉水有限公司", "刘洋", "231182198807150027", "231182", "C15", True),
}
A, B, C, D = sorted(ENTERPRISES)
GRADES = {D1: {A: "A", B: "B", C: "C", D: "E"}, D2: {A: "A", B: "A", C: "D", D: "E"}, D3: {A: "B", B: "A", C: "D"}}
SCORE = {"A": 900, "B": 820, "C": 760, "D": 700, "E": 600}
INDICATORS = (("B1", "成立年限", "years established", "basic", 20),
              ("O5", "纳税信用等级", "tax credit rating", "operations", 140),
              ("S3", "环保信用", "environmental rating", "social", 25))
MART_DDL = """
create schema if not exists marts;
drop table if exists marts.fct_enterprise_evaluation cascade;
drop table if exists marts.fct_indicator_score cascade;
drop table if exists marts.fct_indicator_explanation cascade;
create table marts.fct_enterprise_evaluation (evaluation_date date, uscc text, enterprise_name text,
    legal_rep_name text, region_code text, industry_code text, is_leading boolean, model_version text,
    total_score integer, grade text, computed_grade text, cap_reason text, basic_score integer,
    operations_score integer, social_score integer);
create table marts.fct_indicator_score (evaluation_date date, uscc text, model_version text, indicator_code text,
    indicator_name text, indicator_name_en text, level1 text, points integer, max_points integer,
    under_objection boolean);
create table marts.fct_indicator_explanation (evaluation_date date, uscc text, model_version text,
    indicator_code text, item_kind text, item text, resource text, record_key text, record_date date, points integer,
    under_objection boolean, excluded boolean, excluded_by text);
"""
UNRESOLVED_DDL = ("create table marts.fct_unresolved_references (evaluation_date date, resource text,"
                  " record_key text, reference text, reason text, detail text)")
WITHHELD = "(withheld: looks like a resident ID number)"
ENTERPRISE_VIEWS = ("gov_share.enterprise_evaluation", "finance.enterprise_grades", "association.enterprise_grades",
                    "public_query.credit_grades")


def build_marts(url: str, day: dt.date, grades: dict[str, str] | None = None, *, extra_indicator_rows=()) -> None:
    """What a night's ``dbt build`` leaves: the three marts dropped, recreated and filled for ``day`` (each
    indicator explained by its band; a grade E by the serious dishonesty record that caps it and one an
    upheld objection excluded)."""
    grades = GRADES[day] if grades is None else grades
    with warehouse.connect(url) as conn:
        conn.execute(MART_DDL)
        for uscc, grade in grades.items():
            name, rep, _, region, industry, leading = ENTERPRISES[uscc]
            total = SCORE[grade]
            conn.execute("insert into marts.fct_enterprise_evaluation values (%s,%s,%s,%s,%s,%s,%s,'v1',%s,%s,%s,%s,%s,%s,%s)",
                         (day, uscc, name, rep, region, industry, leading, total, grade, grade,
                          "serious_dishonesty" if grade == "E" else None, 50, total - 170, 120))
            for code, zh, en, level1, max_points in INDICATORS:
                points = max_points if grade == "A" else max_points - 1
                conn.execute("insert into marts.fct_indicator_score values (%s,%s,'v1',%s,%s,%s,%s,%s,%s,%s)",
                             (day, uscc, code, zh, en, level1, points, max_points, code == "O5" and grade == "E"))
                conn.execute("insert into marts.fct_indicator_explanation values"
                             " (%s,%s,'v1',%s,'band','[10,∞)',null,null,null,%s,false,false,null)", (day, uscc, code, points))
            if grade == "E":
                for key, excluded_by in ((f"SD-{uscc[-4:]}", None), (f"SD-{uscc[-4:]}-OLD", f"objections/OBJ-{uscc[-4:]}")):
                    conn.execute("insert into marts.fct_indicator_explanation values (%s,%s,'v1',null,'cap',"
                                 "'serious_dishonesty','serious_dishonesty',%s,%s,0,false,%s,%s)",
                                 (day, uscc, key, day - dt.timedelta(days=30), excluded_by is not None, excluded_by))
        for row in extra_indicator_rows:
            conn.execute("insert into marts.fct_indicator_score values (%s,%s,'v1',%s,%s,%s,%s,%s,%s,%s)", row)


def archive_personal_data(url: str) -> None:
    """Raw records carrying resident ID numbers (legal_rep_id_no, a person's subject_id), as the platform sends."""
    with warehouse.connect(url) as conn:
        for uscc, (name, rep, id_no, *_rest) in ENTERPRISES.items():
            record = {"uscc": uscc, "name": name, "legal_rep_name": rep, "legal_rep_id_no": id_no}
            conn.execute("insert into raw.enterprises (uscc, updated_at, record, _load_id) values (%s, now(), %s, 't')",
                         (uscc, json.dumps(record, ensure_ascii=False)))
            conn.execute("insert into raw.dishonest_debtors (record_id, updated_at, record, _load_id)"
                         " values (%s, now(), %s, 't')",
                         (f"DD-{uscc}", json.dumps({"subject_type": "person", "subject_id": id_no})))


def unresolved_references(url: str, day: dt.date) -> None:
    """marts.fct_unresolved_references for ``day``: an objection aimed at a record never received, and a
    supply-chain link naming a resident ID number that passed as a uscc."""
    with warehouse.connect(url) as conn:
        if conn.execute("select to_regclass('marts.fct_unresolved_references')").fetchone()[0] is None:
            conn.execute(UNRESOLVED_DDL)
        conn.execute("insert into marts.fct_unresolved_references values (%s, 'objections', 'OBJ-X',"
                     " 'penalties/PEN-NEVER', 'target_not_found', null), (%s, 'supply_chain_links', 'L-9', %s,"
                     " 'unknown_enterprise', null)", (day, day, ENTERPRISES[A][2]))


MONITORING_DDL = """
create table if not exists marts.fct_rights_decisions (evaluation_date date, source_resource text, source_id text,
    uscc text, reason text, decided_on date);
create table if not exists marts.fct_supply_chain_links (evaluation_date date, link_id text, leading_uscc text,
    partner_uscc text, relation text, share_pct numeric, partner_reg_status text, partner_grade text,
    partner_total_score integer);
create table if not exists marts.fct_supply_chain_signals (evaluation_date date, link_id text, leading_uscc text,
    partner_uscc text, relation text, share_pct numeric, warning_type text, warning_key text, detail text);
create table if not exists marts.fct_objection_sla (objection_id text, uscc text, submitted_at timestamptz,
    due_on date, status text, resolved_at timestamptz, working_days_used integer, overdue boolean,
    deadline_confirmed boolean, evaluation_date date)
"""


def monitoring_marts(url: str, day: dt.date) -> None:
    """The night's other marts: an objection of B upheld (a regulator notification when B's result changes), A leading
    C (a warning, another when C's grade falls on D2), B's open objection and A's resolved one."""
    with warehouse.connect(url) as conn:
        conn.execute(MONITORING_DDL)
        conn.execute("insert into marts.fct_rights_decisions values (%s, 'objections', %s, %s, 'objection_upheld', %s)",
                     (day, f"OBJ-{day}", B, day))
        conn.execute("insert into marts.fct_supply_chain_links values (%s, 'L-1', %s, %s, 'upstream', 40, 'active',"
                     " null, null)", (day, A, C))
        conn.execute("insert into marts.fct_supply_chain_signals values (%s, 'L-1', %s, %s, 'upstream', 40,"
                     " 'listed_abnormal_operations', 'AO-1', 'on the abnormal operations list')", (day, A, C))
        conn.execute("insert into marts.fct_objection_sla values ('OBJ-1', %s, '2026-11-20T10:00:00+08:00',"
                     " '2026-12-01', 'processing', null, 3, false, true, %s),"
                     " ('OBJ-2', %s, '2026-11-10T09:00:00+08:00', '2026-11-19', 'rejected',"
                     " '2026-11-18T16:00:00+08:00', 6, false, true, %s)", (B, day, A, day))


def published_warehouse(make_database) -> str:
    """A set-up database where D1 then D2 were published, with dbt-like schemas, rows in every channel view and
    personal data upstream (also in an unresolved reference)."""
    url = make_database("cp_publish")
    with warehouse.connect(url) as conn:
        warehouse.setup(conn)
        conn.execute("create schema staging; create table staging.stg_enterprises as select 1 as x;"
                     "create schema intermediate; create table intermediate.int_population as select 1 as x")
    archive_personal_data(url)
    for day in (D1, D2):
        build_marts(url, day)
        unresolved_references(url, day)
        monitoring_marts(url, day)
        publish(day, warehouse_url=url, run_id=f"run-{day}")
    return url


def query(url: str, statement: str, params=()) -> list[tuple]:
    with warehouse.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def channel_dates(url: str) -> dict[str, set[dt.date]]:
    """The evaluation dates every channel view with an evaluation shows (as its owner)."""
    credential = portal_credential(url, A)
    with warehouse.connect(url) as conn:
        portal.enter(conn, credential)
        return {rel: {d for (d,) in conn.execute(sql.SQL("select distinct evaluation_date from {}").format(
                    sql.Identifier(*rel.split("."))))}
                for rel in ENTERPRISE_VIEWS + ("gov_share.indicator_scores", "finance.xinyidai_recommendations",
                                               "enterprise_self.evaluation_detail",
                                               "enterprise_self.indicator_explanations")}


def previous_grades(url: str) -> dict[str, str | None]:
    return dict(query(url, "select uscc, previous_grade from gov_share.enterprise_evaluation"))


@pytest.fixture
def url(warehouse_url) -> str:
    return warehouse_url


def test_publish_switches_every_channel_at_once_and_keeps_history(url):
    build_marts(url, D1)
    first = publish(D1, warehouse_url=url, run_id="run-1")
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D1})}
    assert previous_grades(url) == dict.fromkeys(GRADES[D1])
    build_marts(url, D2)  # the night of D2 is built: readers still see D1
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D1})}
    second = publish(D2, warehouse_url=url, run_id="run-2", published_by="tester")
    assert second > first
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D2})}
    assert dict(query(url, "select uscc, grade from gov_share.enterprise_evaluation")) == GRADES[D2]
    assert previous_grades(url) == GRADES[D1]
    assert query(url, "select publication_id, evaluation_date, model_version, run_id, published_by, is_current,"
                      " enterprise_count, indicator_count from audit.publications order by 1") == [
        (first, D1, "v1", "run-1", "credit_nightly", False, 4, 12),
        (second, D2, "v1", "run-2", "tester", True, 4, 12)]
    # every row says when it was published: the current publication's time
    assert query(url, "select distinct published_at = (select published_at from audit.publications"
                      " where is_current) from gov_share.enterprise_evaluation") == [(True,)]


def test_refuses_a_missing_or_empty_mart_and_changes_nothing(url):
    with pytest.raises(PublicationError, match="fct_enterprise_evaluation does not exist"):
        publish(D1, warehouse_url=url, run_id="r")
    build_marts(url, D1)
    publish(D1, warehouse_url=url, run_id="r")
    build_marts(url, D2, {})
    with pytest.raises(PublicationError, match="no rows for 2026-11-25"):
        publish(D2, warehouse_url=url, run_id="r")
    build_marts(url, D1)  # the marts hold another date than the one asked for
    with pytest.raises(PublicationError, match="fct_enterprise_evaluation has no rows for 2026-11-25"):
        publish(D2, warehouse_url=url, run_id="r")
    build_marts(url, D2)
    with warehouse.connect(url) as conn:
        conn.execute("delete from marts.fct_indicator_score")
    with pytest.raises(PublicationError, match="fct_indicator_score has no rows for 2026-11-25"):
        publish(D2, warehouse_url=url, run_id="r")
    with warehouse.connect(url) as conn:
        conn.execute("drop table marts.fct_indicator_score")
    with pytest.raises(PublicationError, match="fct_indicator_score.* does not exist"):
        publish(D2, warehouse_url=url, run_id="r")
    assert query(url, "select evaluation_date from audit.publications") == [(D1,)]
    assert query(url, "select count(*) from publication.enterprise_evaluation") == [(4,)]
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D1})}


def test_rerun_of_a_date_makes_it_current_without_duplicates(url):
    for day in (D1, D2, D2):
        build_marts(url, day)
        last = publish(day, warehouse_url=url, run_id=f"run-{day}")
    assert query(url, "select uscc, count(*) from gov_share.enterprise_evaluation group by uscc having count(*) > 1") == []
    assert query(url, "select count(*) from gov_share.indicator_scores") == [(12,)]
    assert previous_grades(url) == GRADES[D1]  # not the first publication of D2
    assert query(url, "select publication_id from audit.publications where is_current") == [(last,)]
    build_marts(url, D1)  # back to D1 (e.g. a correction): nothing earlier, so no previous grade
    publish(D1, warehouse_url=url, run_id="again")
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D1})}
    assert previous_grades(url) == dict.fromkeys(GRADES[D1])
    build_marts(url, D3)  # previous = the latest publication of the latest earlier date (D2, rerun)
    publish(D3, warehouse_url=url, run_id="d3")
    assert previous_grades(url) == {A: "A", B: "A", C: "D"}
    assert query(url, "select count(*), count(*) filter (where is_current) from audit.publications") == [(5, 1)]


def test_failed_night_leaves_every_channel_on_the_previous_date(url):
    build_marts(url, D1)
    publish(D1, warehouse_url=url, run_id="run-1")
    before = query(url, "select * from gov_share.enterprise_evaluation order by uscc")
    # night D2: built but never published (the gate failed) ...
    build_marts(url, D2)
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D1})}
    # ... or published, but the copy fails half-way (after the evaluation rows went in)
    duplicate = (D2, A, "B1", "成立年限", "years established", "basic", 1, 20, False)
    build_marts(url, D2, extra_indicator_rows=[duplicate])
    with pytest.raises(PublicationError, match="breaks the mart contract"):
        publish(D2, warehouse_url=url, run_id="run-2")
    assert query(url, "select * from gov_share.enterprise_evaluation order by uscc") == before
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D1})}
    assert query(url, "select evaluation_date, is_current from audit.publications") == [(D1, True)]
    assert query(url, "select count(*) from publication.indicator_score") == [(12,)]


def test_a_repeatable_read_reader_sees_one_evaluation_across_a_publication(url):
    build_marts(url, D1)
    publish(D1, warehouse_url=url, run_id="run-1")
    build_marts(url, D2)
    with warehouse.connect(url, autocommit=True) as reader:
        reader.execute("set role gov_share_reader")
        with reader.transaction():
            reader.execute("set transaction isolation level repeatable read")
            first = reader.execute("select evaluation_date, uscc, grade from gov_share.enterprise_evaluation").fetchall()
            # publish from another thread while the reader's transaction is open: it must not wait for the reader
            done = threading.Event()
            worker = threading.Thread(target=lambda: (publish(D2, warehouse_url=url, run_id="run-2"), done.set()))
            worker.start()
            worker.join(timeout=30)
            assert done.is_set()
            again = reader.execute("select evaluation_date, uscc, grade from gov_share.enterprise_evaluation").fetchall()
            indicators = reader.execute("select distinct evaluation_date from gov_share.indicator_scores").fetchall()
        assert sorted(again) == sorted(first) and {d for d, _, _ in first} == {D1}
        assert indicators == [(D1,)]
        after = reader.execute("select distinct evaluation_date from gov_share.enterprise_evaluation").fetchall()
        assert after == [(D2,)]


@contextlib.contextmanager
def publication_held_at(url: str, day: dt.date, mart: str, waiting_query: str, where: str):
    """``publish(day)`` in a thread, held while it waits for ``mart`` (locked here) in a statement like
    ``waiting_query``; the body runs meanwhile, then the publication is let go and has ended."""
    blocked = ("select count(*) from pg_stat_activity where datname = current_database() and wait_event_type = 'Lock'"
               " and query like %s")
    with warehouse.connect(url) as blocker:
        blocker.execute(sql.SQL("lock table {} in access exclusive mode").format(sql.Identifier("marts", mart)))
        worker = threading.Thread(target=publish, args=(day,), kwargs={"warehouse_url": url, "run_id": f"run-{day}"})
        worker.start()
        deadline = time.monotonic() + 30
        while query(url, blocked, (waiting_query,)) != [(1,)]:
            assert time.monotonic() < deadline, f"the publication never reached {where}"
            time.sleep(0.05)
        yield
    worker.join(timeout=30)
    assert not worker.is_alive()


def test_readers_see_the_previous_publication_until_the_new_one_commits_whole(url):
    """A publication held half-way (its evaluation rows copied, waiting for the indicator mart) shows nothing of
    itself; at its commit every channel shows the new date at once."""
    build_marts(url, D1)
    publish(D1, warehouse_url=url, run_id="run-1")
    before = {rel: query(url, f"select * from {rel} order by 1") for rel in ENTERPRISE_VIEWS}
    build_marts(url, D2)
    with publication_held_at(url, D2, "fct_indicator_score", 'insert into "publication"."indicator_score"%',
                             "the indicator copy"):
        assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D1})}
        assert {rel: query(url, f"select * from {rel} order by 1") for rel in ENTERPRISE_VIEWS} == before
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D2})}
    assert query(url, "select evaluation_date from audit.publications where is_current") == [(D2,)]


def test_the_switch_and_what_follows_it_commit_together(url):
    """A publication held after its switch of the current publication (writing the notices that follow it):
    every channel still shows the previous date, none is empty, and no other publication may start; at its
    commit they all show the new one. (Switching in two commits would show empty channels here.)"""
    build_marts(url, D1)
    publish(D1, warehouse_url=url, run_id="run-1")
    build_marts(url, D2)
    monitoring_marts(url, D2)
    with publication_held_at(url, D2, "fct_rights_decisions", "%fct_rights_decisions%", "the notices after its switch"):
        assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D1})}
        assert query(url, "select evaluation_date from audit.publications where is_current") == [(D1,)]
        with warehouse.connect(url) as other:  # the publication lock is still held
            other.execute("set lock_timeout = '200ms'")
            with pytest.raises(psycopg.errors.LockNotAvailable):
                publish_module._lock_current(other)
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D2})}


def test_channel_views_survive_dbt_dropping_the_marts_and_do_not_depend_on_them(url):
    build_marts(url, D1)
    publish(D1, warehouse_url=url, run_id="run-1")
    before = {rel: query(url, f"select * from {rel} order by 1") for rel in ENTERPRISE_VIEWS}
    build_marts(url, D2)  # drop table ... cascade + recreate, as dbt does
    with warehouse.connect(url) as conn:
        warehouse.setup(conn)
        warehouse.setup(conn)
    assert {rel: query(url, f"select * from {rel} order by 1") for rel in ENTERPRISE_VIEWS} == before
    views = {f"{ch.name}.{v.name}" for ch in channels.CHANNELS for v in ch.views}
    present = {f"{s}.{n}" for s, n in query(url, "select table_schema, table_name from information_schema.views")}
    assert views <= present
    # what every channel view reads, through any views between: publication and audit relations only
    schemas = [ch.name for ch in channels.CHANNELS]
    read = query(url, """
        with recursive reads(oid) as (
            select oid from pg_class where relnamespace::regnamespace::text = any(%s)
            union
            select d.refobjid from reads r join pg_rewrite w on w.ev_class = r.oid
              join pg_depend d on d.classid = 'pg_rewrite'::regclass and d.objid = w.oid
                              and d.refclassid = 'pg_class'::regclass and d.refobjid <> r.oid)
        select distinct relnamespace::regnamespace::text from pg_class where oid in (select oid from reads)""",
                 (schemas,))
    assert {s for (s,) in read} - set(schemas) == {"publication", "audit"}


def test_xinyidai_lists_grade_a_only_with_the_legal_representative(url):
    build_marts(url, D2)
    with warehouse.connect(url) as conn:  # D's total alone would be an A: its cap keeps it off the list
        conn.execute("update marts.fct_enterprise_evaluation set computed_grade = 'A' where uscc = %s", (D,))
    publish(D2, warehouse_url=url, run_id="run-2")
    listed = "select uscc, legal_rep_name, grade from finance.xinyidai_recommendations order by uscc"
    rows = query(url, listed)
    assert rows == [(u, ENTERPRISES[u][1], "A") for u, g in sorted(GRADES[D2].items()) if g == "A"]
    with warehouse.connect(url) as conn:
        conn.execute("set role finance_reader")
        assert conn.execute(listed).fetchall() == rows
    assert len(rows) == 2 and len(query(url, "select * from finance.enterprise_grades")) == 4


def test_objection_deadlines_are_published_with_the_evaluation_and_replaced_by_the_next(url):
    sla_ddl = ("create table marts.fct_objection_sla (objection_id text, uscc text, submitted_at timestamptz,"
               " due_on date, status text, resolved_at timestamptz, working_days_used integer, overdue boolean,"
               " deadline_confirmed boolean, evaluation_date date)")
    row = "insert into marts.fct_objection_sla values (%s, %s, '2026-09-18T10:00:00+08:00', '2026-09-29', %s, null, %s, %s, true, %s)"
    build_marts(url, D1)
    with warehouse.connect(url) as conn:
        conn.execute("drop table if exists marts.fct_objection_sla")
        conn.execute(sla_ddl)
        conn.execute(row, ("OB-1", A, "submitted", 3, False, D1))
        conn.execute(row, ("OB-2", B, "processing", 3, False, D1))
    # not before the publication: the channel shows the published evaluation's deadlines only
    assert query(url, "select count(*) from credit_office.objection_sla") == [(0,)]
    publish(D1, warehouse_url=url, run_id="run-1")
    assert query(url, "select objection_id, due_on, overdue from credit_office.objection_sla order by 1") == [
        ("OB-1", dt.date(2026, 9, 29), False), ("OB-2", dt.date(2026, 9, 29), False)]
    build_marts(url, D2)
    with warehouse.connect(url) as conn:
        conn.execute("delete from marts.fct_objection_sla")
        conn.execute(row, ("OB-1", A, "submitted", 9, True, D2))
    publish(D2, warehouse_url=url, run_id="run-2")
    assert query(url, "select objection_id, working_days_used, overdue from credit_office.objection_sla") == [
        ("OB-1", 9, True)]


def test_unresolved_references_are_published_with_the_evaluation_and_kept_by_a_reevaluation(url):
    listed = ("select resource, record_key, reference, unresolved_reason, evaluation_date"
              " from credit_office.unresolved_references order by resource")
    build_marts(url, D1)
    unresolved_references(url, D1)
    assert query(url, listed) == []  # not before the publication
    publish(D1, warehouse_url=url, run_id="run-1")
    night = [("objections", "OBJ-X", "penalties/PEN-NEVER", "target_not_found", D1),
             ("supply_chain_links", "L-9", WITHHELD, "unknown_enterprise", D1)]
    assert query(url, listed) == night
    with warehouse.connect(url) as conn:
        conn.execute("delete from marts.fct_unresolved_references")
    republish([A], warehouse_url=url, run_id="re-1")
    assert query(url, listed) == night
    build_marts(url, D2)  # built, not yet published: D2 has no unresolved references
    assert query(url, listed) == night
    publish(D2, warehouse_url=url, run_id="run-2")
    assert query(url, listed) == []


def test_a_reevaluation_replaces_the_explanations_of_its_enterprises_and_carries_the_others(url):
    explained = ("select x.uscc, x.indicator_code, x.item_kind, x.record_key, x.points from publication.indicator_explanation x"
                 " join audit.publications p using (publication_id) where p.is_current order by 1, 2, 3, 4")
    build_marts(url, D2)
    publish(D2, warehouse_url=url, run_id="run-2")
    before = query(url, explained)
    build_marts(url, D2, {**GRADES[D2], A: "E", B: "E"})  # A re-evaluated (now capped); B changed in the marts only
    republish([A], warehouse_url=url, run_id="re-1")
    after = query(url, explained)
    assert [r for r in after if r[0] != A] == [r for r in before if r[0] != A]
    assert [r for r in after if r[0] == A] == [(A, code, "band", None, max_points - 1) for code, *_, max_points in INDICATORS
                                             ] + [(A, None, "cap", f"SD-{A[-4:]}", 0), (A, None, "cap", f"SD-{A[-4:]}-OLD", 0)]


def test_a_reevaluation_refuses_marts_a_night_has_replaced_and_changes_nothing(url):
    build_marts(url, D1)
    publish(D1, warehouse_url=url, run_id="run-1")
    before = query(url, "select * from gov_share.enterprise_evaluation order by uscc")
    build_marts(url, D2)  # marts rebuilt for another date after the re-evaluation's gate: its enterprises must not vanish
    with pytest.raises(PublicationError, match="marts.fct_enterprise_evaluation has no rows for 2026-11-24"):
        republish([A], warehouse_url=url, run_id="re-1")
    assert query(url, "select * from gov_share.enterprise_evaluation order by uscc") == before
    assert query(url, "select count(*) from audit.publications") == [(1,)]


def test_publication_statistics_know_the_new_rows(url):
    """Monitoring compares the new publication with the previous one in the same transaction: without
    statistics counting the new rows the planner nests loops over both (13 minutes at 100,000)."""
    for day in (D1, D2):
        build_marts(url, day)
        publish(day, warehouse_url=url, run_id=f"run-{day}")
        assert query(url, "select reltuples::bigint from pg_class where oid = 'publication.enterprise_evaluation'::regclass"
                     ) == query(url, "select count(*) from publication.enterprise_evaluation")


def test_an_operator_rolls_every_channel_back_to_the_previous_publication(url, tmp_path):
    """OPERATIONS.md, "Roll the channels back": `creditplus publication rollback`, then the next night publishes."""
    import os
    import subprocess

    from conftest import CLI

    env = {**os.environ, "CREDITPLUS_WAREHOUSE_URL": url, "CREDITPLUS_HOME": str(tmp_path)}
    cli = lambda *args: subprocess.run([CLI, "publication", *args], env=env, capture_output=True, text=True)  # noqa: E731
    refused = cli("rollback")
    assert (refused.returncode, refused.stderr) == (2, "creditplus: error: nothing is published yet; nothing to roll back\n")
    ids = []
    for day in (D1, D2):
        build_marts(url, day)
        ids.append(publish(day, warehouse_url=url, run_id=f"run-{day}"))
    done = cli("rollback")
    assert done.returncode == 0, done.stderr
    assert done.stdout == (f"publication: every channel now reads publication {ids[0]} (evaluation date {D1}); "
                           f"publication {ids[1]} ({D2}) stays in the history\n")
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D1})}
    assert dict(query(url, "select uscc, grade from gov_share.enterprise_evaluation")) == GRADES[D1]
    assert query(url, "select from_publication, to_publication from audit.publication_rollbacks") == [(ids[1], ids[0])]
    listed = cli("list").stdout.splitlines()
    assert listed[0].startswith(f"  {ids[1]:>6}  {D2}") and listed[1].startswith(f"* {ids[0]:>6}  {D1}")
    assert cli("rollback").stderr == f"creditplus: error: publication {ids[0]} is the first one; nothing to roll back to\n"
    assert cli("rollback", "--to", str(ids[1])).returncode == 0  # forward again, by id
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D2})}
    assert cli("rollback", "--to", "999").stderr == "creditplus: error: publication 999 does not exist\n"
    build_marts(url, D3)
    publish(D3, warehouse_url=url, run_id="run-d3")  # the next night publishes as usual
    assert set(map(frozenset, channel_dates(url).values())) == {frozenset({D3})}
