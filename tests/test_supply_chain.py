"""Supply-chain monitoring (评价细则 第一条) end to end: the hand-written dataset tests/datasets/supply_chain
loaded with the real loader, dbt built and published night by night; every warning type fires once, on
the night its risk appears, and never again on an unchanged night or a rerun."""
from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from psycopg import sql

from creditplus import load, warehouse
from creditplus.publish import publish
from creditplus.reevaluation import build_marts
from test_scoring import unexplained, unexplained_in_the_portal

DATASETS = Path(__file__).parent / "datasets"
D, D1, D2 = dt.date(2026, 11, 25), dt.date(2026, 11, 26), dt.date(2026, 11, 27)
LEAD, P1, P2, P3, P4, P5, P6 = ("91231100MA1LEAD01D", "91231100MA1PART01C", "91231100MA1PART02F", "91231100MA1PART03J",
                                "91231100MA1PART04M", "91231100MA1PART05Q", "91231100MA1PART06U")
UNKNOWN = "91231100MA1UNKN01H"


def loaded_warehouse(make_database, dataset: str) -> str:
    url = make_database(f"cp_{dataset}")
    with warehouse.connect(url) as conn:
        warehouse.setup(conn)
        load.archive_dataset_dir(conn, DATASETS / dataset, dataset)
    return url


def night(url: str, day: dt.date) -> int:
    """What a night does after extraction: dbt build of what publication reads, then publication."""
    build_marts(day, warehouse_url=url, schema_suffix="")
    return publish(day, warehouse_url=url, run_id=f"night-{day}")


def query(url: str, statement: str, params=()) -> list[tuple]:
    with warehouse.connect(url) as conn:
        return conn.execute(statement, params).fetchall()


def read_as(url: str, role: str, statement: str, params=()) -> list[tuple]:
    """What a member of the group ``role`` reads."""
    with warehouse.connect(url) as conn:
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
        return conn.execute(statement, params).fetchall()


def warnings(url: str) -> list[tuple]:
    return sorted(query(url, "select partner_uscc, relation, warning_type, severity, detected_on"
                             " from supply_chain.risk_warnings"))


@pytest.fixture(scope="module")
def nights(make_database):
    """Nights D, D+1, D+1 again (rerun) and D+2, with the warnings, grades and summary (as 工信局 reads it,
    the last column saying whether it is of the current publication) after each."""
    url = loaded_warehouse(make_database, "supply_chain")
    after = {}
    for label, day in (("D", D), ("D+1", D1), ("D+1 rerun", D1), ("D+2", D2)):
        publication_id = night(url, day)
        after[label] = {"warnings": warnings(url),
                        "grades": dict(query(url, "select uscc, grade from gov_share.enterprise_evaluation")),
                        "summary": read_as(url, "supply_chain_reader",
                                           "select leading_uscc, evaluation_date, partners, share_weighted_score,"
                                           " high_risk_partners, new_warnings, published_at = %s"
                                           " from supply_chain.partner_summary",
                                           query(url, "select published_at from audit.publications"
                                                      " where publication_id = %s", (publication_id,))[0]),
                        "publication_id": publication_id,
                        "unexplained": unexplained(url) + unexplained(url, published=True)
                                       + unexplained_in_the_portal(url)}
    return url, after


def test_every_point_of_every_night_is_explained(nights):
    """Issue 14: each night's explanation rows sum to every enterprise's indicator points and name the record of
    every cap, in the marts, the publication and each enterprise's portal view."""
    _, after = nights
    assert {label: run["unexplained"] for label, run in after.items()} == dict.fromkeys(after, [])


def test_first_night_warns_of_nothing_outside_valid_links(nights):
    url, after = nights
    # every partner is sound on D; P6 is on the serious dishonesty list, but its link ended before D
    assert after["D"]["grades"] == {LEAD: "A", P1: "A", P2: "A", P3: "A", P4: "A", P5: "A", P6: "E"}
    assert after["D"]["warnings"] == []
    assert after["D"]["summary"] == [(LEAD, D, 5, Decimal("920.0"), 0, 0, True)]


def test_every_warning_type_fires_on_the_night_its_risk_appears(nights):
    _, after = nights
    assert after["D+1"]["grades"] == {LEAD: "A", P1: "C", P2: "E", P3: "B", P5: "D", P6: "E"}  # P4 cancelled
    assert after["D+1"]["warnings"] == sorted([
        (P1, "upstream", "grade_fell_two_or_more", "high", D1),     # A -> C, share 40 %: one level up
        (P2, "downstream", "grade_fell_to_e", "high", D1),
        (P2, "downstream", "listed_serious_dishonesty", "high", D1),
        (P3, "upstream", "listed_abnormal_operations", "low", D1),  # share 3 %: one level down, floor low
        (P3, "upstream", "severe_penalty", "low", D1),              # A -> B is one grade: no grade warning
        (P4, "downstream", "deregistered", "critical", D1),         # share 50 %
        (P5, "upstream", "grade_fell_to_d", "medium", D1),
        (P5, "upstream", "listed_dishonest_debtor", "high", D1),
    ])


def test_no_warning_fires_twice_on_a_rerun_or_an_unchanged_night(nights):
    _, after = nights
    assert after["D+1 rerun"]["warnings"] == after["D+1"]["warnings"]
    assert after["D+2"]["warnings"] == after["D+1"]["warnings"]
    assert after["D+2"]["grades"] == after["D+1"]["grades"]


def test_summary_per_leading_enterprise(nights):
    _, after = nights
    # graded partners weighted by share: P1 780 x 40, P2 920 x 10, P3 820 x 3, P5 820 x 20 (P4 is not graded)
    weighted = Decimal((780 * 40 + 920 * 10 + 820 * 3 + 820 * 20) / 73).quantize(Decimal("0.1"))
    # high risk: P2 (E), P4 (deregistered), P5 (D); eight warnings detected on D+1, none on D+2
    assert after["D+1"]["summary"] == [(LEAD, D1, 5, weighted, 3, 8, True)]
    assert after["D+1 rerun"]["summary"] == after["D+1"]["summary"]
    assert after["D+2"]["summary"] == [(LEAD, D2, 5, weighted, 3, 0, True)]


def test_a_link_to_an_unknown_enterprise_is_listed_for_the_credit_office(nights):
    url, _ = nights
    listed = [("supply_chain_links", "L-7", UNKNOWN, "unknown_enterprise")]
    assert query(url, "select resource, record_key, reference, reason from marts.fct_unresolved_references") == listed
    assert read_as(url, "credit_office", "select resource, record_key, reference, unresolved_reason"
                                         " from credit_office.unresolved_references") == listed
    assert query(url, "select count(*) from supply_chain.risk_warnings where partner_uscc = %s", (UNKNOWN,)) == [(0,)]
