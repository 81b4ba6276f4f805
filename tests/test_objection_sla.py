"""fct_objection_sla / fct_overdue_objections built by dbt in a fresh database, checked against
hand-worked deadlines (2026 schedule) and against creditplus.workdays on the same inputs; the night's
report warns of the published objections open past their deadline and of those whose deadline is provisional
(counted over a year the work calendar does not confirm, or past the seed's last day)."""
from __future__ import annotations

import datetime as dt
import json
import logging
from pathlib import Path

import pytest
from psycopg.rows import dict_row

from creditplus import dbt_runner, nightly, orchestration, warehouse, workdays
from creditplus.config import CST
from creditplus.publish import publish
from creditplus.resources import resource
from creditplus.workdays import CalendarWarning
from test_publish import A, build_marts

D = dt.date.fromisoformat
SELECT = "+fct_objection_sla +fct_overdue_objections"
OPEN = ("submitted", "processing")

# (objection_id, updated_at, submitted_at, status, resolved_at)
VERSIONS = [
    ("A-before-national-day", "2026-09-30T11:00:00+08:00", "2026-09-30T10:00:00+08:00", "processing", None),
    ("B-spec-open", "2026-09-18T11:00:00+08:00", "2026-09-18T10:00:00+08:00", "submitted", None),
    ("C-resolved-on-due", "2026-09-29T18:30:00+08:00", "2026-09-18T10:00:00+08:00", "upheld", "2026-09-29T18:00:00+08:00"),
    ("D-resolved-after-due", "2026-09-30T01:00:00+08:00", "2026-09-18T10:00:00+08:00", "rejected", "2026-09-29T16:30:00+00:00"),
    ("E-after-midnight-cst", "2026-09-18T01:00:00+08:00", "2026-09-17T16:30:00+00:00", "submitted", None),
    ("F-on-holiday", "2026-10-03T12:00:00+08:00", "2026-10-03T09:00:00+08:00", "submitted", None),
    ("G-on-makeup-saturday", "2026-10-10T12:00:00+08:00", "2026-10-10T09:00:00+08:00", "processing", None),
    ("H-before-spring-festival", "2026-03-03T18:00:00+08:00", "2026-02-13T09:00:00+08:00", "rejected", "2026-03-03T17:00:00+08:00"),
    ("I-before-labour-day", "2026-05-08T18:00:00+08:00", "2026-04-24T09:00:00+08:00", "upheld", "2026-05-08T17:00:00+08:00"),
    ("K-resolved-later", "2026-09-21T12:00:00+08:00", "2026-09-21T09:00:00+08:00", "submitted", None),
    ("K-resolved-later", "2026-10-20T12:00:00+08:00", "2026-09-21T09:00:00+08:00", "upheld", "2026-10-19T17:00:00+08:00"),
    ("L-into-2027", "2026-12-28T12:00:00+08:00", "2026-12-28T09:00:00+08:00", "submitted", None),
    ("M-across-the-seeds-end", "2027-12-28T12:00:00+08:00", "2027-12-28T09:00:00+08:00", "submitted", None),
    ("N-after-the-seeds-end", "2028-01-05T12:00:00+08:00", "2028-01-05T09:00:00+08:00", "processing", None),
]

# Worked by hand from the State Council's 2026 schedule: (due_on, working_days_used, overdue).
EXPECTED_2026_10_15 = {
    "A-before-national-day": ("2026-10-15", 7, False),  # open, D = due_on: not yet overdue
    "B-spec-open": ("2026-09-29", 15, True),
    "C-resolved-on-due": ("2026-09-29", 7, False),
    "D-resolved-after-due": ("2026-09-29", 8, True),    # 16:30 UTC is 00:30 on 30 Sep at +08:00
    "E-after-midnight-cst": ("2026-09-29", 15, True),   # submitted 18 Sep at +08:00
    "F-on-holiday": ("2026-10-15", 7, False),
    "G-on-makeup-saturday": ("2026-10-20", 4, False),
    "H-before-spring-festival": ("2026-03-02", 8, True),
    "I-before-labour-day": ("2026-05-08", 7, False),
    "K-resolved-later": ("2026-10-08", 13, True),       # still open as known on D
}


@pytest.fixture(scope="module")
def url(make_database) -> str:
    """A fresh database with raw.objections loaded."""
    url = make_database("cp_objection_sla")
    with warehouse.connect(url) as conn:
        conn.execute("create schema raw")
        conn.execute(warehouse.raw_table_ddl(resource("objections")))
        with conn.cursor() as cur:
            cur.executemany(
                "insert into raw.objections (objection_id, updated_at, record, _load_id) values (%s, %s, %s, 'test')",
                [(oid, updated, json.dumps({
                    "objection_id": oid, "uscc": "91231100MA1B2C3D4X", "target_resource": "penalties",
                    "target_record_id": f"P-{oid}", "submitted_at": submitted, "status": status,
                    "updated_at": updated, **({"resolved_at": resolved} if resolved else {})}))
                 for oid, updated, submitted, status, resolved in VERSIONS])
    return url


@pytest.fixture(scope="module")
def built(url, tmp_path_factory):
    """build(D) runs dbt for D and returns the two marts."""
    target = tmp_path_factory.mktemp("dbt-target")

    def build(evaluation_date: str) -> tuple[dict[str, dict], list[dict]]:
        dbt_runner.build(evaluation_date, warehouse_url=url, select=SELECT, target_path=target)
        with warehouse.connect(url, row_factory=dict_row) as conn:
            sla = {r["objection_id"]: r for r in conn.execute("select * from marts.fct_objection_sla")}
            overdue = conn.execute("select * from marts.fct_overdue_objections order by objection_id").fetchall()
        return sla, overdue

    return build


def python_row(r: dict) -> dict:
    """The same row computed by creditplus.workdays from the model's inputs."""
    submitted_on = r["submitted_at"].astimezone(CST).date()
    resolved_on = r["resolved_at"].astimezone(CST).date() if r["resolved_at"] else None
    counted = r["evaluation_date"] if r["status"] in OPEN or resolved_on is None else resolved_on
    due_on, confirmed = workdays.add_workdays(submitted_on, 7)
    used, _ = workdays.workdays_between(submitted_on, counted)
    return {**r, "due_on": due_on, "working_days_used": used, "overdue": counted > due_on,
            "deadline_confirmed": confirmed}


def test_deadlines_on_2026_10_15(built):
    sla, overdue = built("2026-10-15")
    assert set(sla) == set(EXPECTED_2026_10_15)  # L (submitted 28 Dec) is not known yet
    for oid, (due_on, used, late) in EXPECTED_2026_10_15.items():
        row = sla[oid]
        assert (row["due_on"], row["working_days_used"], row["overdue"]) == (D(due_on), used, late), oid
        assert row["deadline_confirmed"] and row["evaluation_date"] == D("2026-10-15")
        assert row == python_row(row)
    assert sla["K-resolved-later"]["status"] == "submitted"
    assert [r["objection_id"] for r in overdue] == ["B-spec-open", "E-after-midnight-cst", "K-resolved-later"]


def test_deadline_into_provisional_2027(built):
    sla, overdue = built("2027-01-08")
    into_2027 = sla["L-into-2027"]
    assert (into_2027["due_on"], into_2027["working_days_used"], into_2027["overdue"],
            into_2027["deadline_confirmed"]) == (D("2027-01-07"), 8, True, False)
    assert sla["K-resolved-later"]["status"] == "upheld" and sla["K-resolved-later"]["overdue"]
    assert sla["A-before-national-day"]["overdue"] and sla["A-before-national-day"]["deadline_confirmed"]
    with pytest.warns(CalendarWarning):
        assert all(row == python_row(row) for row in sla.values())
    assert {r["objection_id"]: r["deadline_confirmed"] for r in overdue} == {
        "A-before-national-day": True, "B-spec-open": True, "E-after-midnight-cst": True,
        "F-on-holiday": True, "G-on-makeup-saturday": True, "L-into-2027": False}


def test_past_the_seeds_last_day_deadlines_are_counted_provisionally_and_unconfirmed(built):
    """The seed ends 2027-12-31; the calendar goes on Monday to Friday (1-2 Jan 2028 are a weekend)."""
    sla, _ = built("2028-01-10")
    assert {oid: (r["due_on"], r["working_days_used"], r["overdue"], r["deadline_confirmed"])
            for oid, r in sla.items() if oid[0] in "MN"} == {
        "M-across-the-seeds-end": (D("2028-01-06"), 9, True, False),
        "N-after-the-seeds-end": (D("2028-01-14"), 3, False, False)}


def test_the_night_report_warns_of_published_objections_open_past_their_deadline(url, built, monkeypatch, caplog,
                                                                                  tmp_path):
    day = D("2026-10-15")
    built(day.isoformat())
    with warehouse.connect(url) as conn:
        warehouse.setup(conn)
        assert orchestration.summary(conn, day)["overdue_objections"] is None  # nothing published for the day
    build_marts(url, day, {A: "A"})
    publish(day, warehouse_url=url, run_id="night")
    monkeypatch.setattr(orchestration, "warehouse_url", lambda: url)
    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path))  # the report task's page goes there
    with caplog.at_level(logging.INFO, logger=orchestration.__name__):
        result = orchestration.report(None, {"evaluation_date": day.isoformat()})
    assert result["report"] == str(tmp_path / "reports" / f"{day}.html")
    late = "3 objections open past their deadline (第十四条): B-spec-open, E-after-midnight-cst, K-resolved-later"
    assert result["overdue_objections"] == ["B-spec-open", "E-after-midnight-cst", "K-resolved-later"]
    assert [r.getMessage() for r in caplog.records
            if r.name == orchestration.__name__ and r.levelno == logging.WARNING] == [f"credit_nightly {day}: {late}"]
    assert f"  WARNING: {late}" in nightly.format_summary(result, 1.0, url, Path("nightly.log")).splitlines()


def test_the_credit_office_sees_which_deadlines_are_provisional_and_the_night_report_warns(url, built, monkeypatch,
                                                                                         caplog, tmp_path):
    day = D("2027-01-08")
    built(day.isoformat())
    build_marts(url, day, {A: "A"})
    publish(day, warehouse_url=url, run_id="night-2027")
    with warehouse.connect(url) as conn:
        confirmed = dict(conn.execute("select objection_id, deadline_confirmed from credit_office.objection_sla"
                                      " where objection_id in ('A-before-national-day', 'L-into-2027')"))
    assert confirmed == {"A-before-national-day": True, "L-into-2027": False}
    monkeypatch.setattr(orchestration, "warehouse_url", lambda: url)
    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path))
    with caplog.at_level(logging.INFO, logger=orchestration.__name__):
        result = orchestration.report(None, {"evaluation_date": day.isoformat()})
    provisional = "1 open objections have a provisional deadline (calendar year not confirmed): L-into-2027"
    assert result["unconfirmed_deadlines"] == ["L-into-2027"]
    warned = [r.getMessage() for r in caplog.records if r.name == orchestration.__name__ and r.levelno == logging.WARNING]
    assert f"credit_nightly {day}: {provisional}" in warned
    assert f"  WARNING: {provisional}" in nightly.format_summary(result, 1.0, url, Path("nightly.log")).splitlines()
