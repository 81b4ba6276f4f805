"""Re-evaluation notices (第十四条–第十六条) at the nightly publication, on the hand-written dataset
tests/datasets/rights: an upheld objection, an approved repair and a confirmed self-report decided on
D+1 each notify regulators once, however often D+1 is rerun; a pending self-report and references to
records or enterprises the warehouse does not know change nothing and are listed for the credit office; decisions
that change no result (tests/datasets/rights_unchanged) notify nobody."""
from __future__ import annotations

import pytest

from creditplus import load, warehouse
from creditplus.publish import publish
from creditplus.reevaluation import build_marts
from test_scoring import unexplained, unexplained_in_the_portal
from test_supply_chain import DATASETS, D, D1, D2, loaded_warehouse, query, read_as

R1, R2, R3, R4, R5, NOBODY = ("91231100MA1RGHT016", "91231100MA1RGHT029", "91231100MA1RGHT03C", "91231100MA1RGHT04F",
                              "91231100MA1RGHT05J", "91231100MA1NB0DY12")
NOTICES = ("select uscc, reason, old_grade, new_grade, old_score, new_score, evaluation_date"
           " from regulator.notifications")
UNRESOLVED = "select resource, record_key, reference, {}, evaluation_date from {}"
# What moved points or capped, as published: (uscc, indicator, kind, record, points, under objection, excluded by).
EXPLAINED = ("select x.uscc, x.indicator_code, x.item_kind, x.record_key, x.points, x.under_objection, x.excluded_by"
             " from publication.indicator_explanation x join audit.publications p using (publication_id)"
             " where p.is_current and x.item_kind in ('record', 'floor', 'ceiling', 'cap')"
             " order by 1, 2 nulls last, 3, 4")


def evaluation(url: str) -> dict[str, tuple]:
    return {u: (g, s) for u, g, s in query(url, "select uscc, grade, total_score from gov_share.enterprise_evaluation")}


def o7(url: str, uscc: str) -> int:
    return query(url, "select points from gov_share.indicator_scores where uscc = %s and indicator_code = 'O7'",
                 (uscc,))[0][0]


@pytest.fixture(scope="module")
def nights(make_database):
    """Nights D, D+1, D+1 again and D+2; what the channels show after each, and the unresolved references
    of the night's marts and of the credit office's view, before the publication and after it."""
    url = loaded_warehouse(make_database, "rights")
    after = {}
    listed = UNRESOLVED.format("unresolved_reason", "credit_office.unresolved_references")
    for label, day in (("D", D), ("D+1", D1), ("D+1 rerun", D1), ("D+2", D2)):
        build_marts(day, warehouse_url=url, schema_suffix="")
        before = sorted(read_as(url, "credit_office", listed))
        publish(day, warehouse_url=url, run_id=f"night-{day}")
        after[label] = {"evaluation": evaluation(url), "notices": sorted(query(url, NOTICES)), "R2 O7": o7(url, R2),
                        "built": sorted(query(url, UNRESOLVED.format("reason", "marts.fct_unresolved_references"))),
                        "listed before": before, "listed": sorted(read_as(url, "credit_office", listed)),
                        "explained": query(url, EXPLAINED),
                        "unexplained": unexplained(url) + unexplained(url, published=True)
                                       + unexplained_in_the_portal(url)}
    return url, after


def test_the_enterprises_see_what_each_decision_did_to_their_points(nights):
    """Issue 14 on the rights dataset: every point of every night explained; on D R1's cap names its serious
    dishonesty record (under objection) and R2's two penalties are floored; on D+1 the upheld objection and the
    approved repair are named on the records they took out, and R4's confirmed self-report adds its honor."""
    _, after = nights
    assert {label: run["unexplained"] for label, run in after.items()} == dict.fromkeys(after, [])
    assert after["D"]["explained"] == [
        (R1, None, "cap", "SD-R1", 0, True, None),
        (R2, "O7", "floor", None, 20, False, None),
        (R2, "O7", "record", "PEN-R2-1", -60, False, None),
        (R2, "O7", "record", "PEN-R2-2", -60, False, None)]
    assert after["D+1"]["explained"] == after["D+1 rerun"]["explained"] == [
        (R1, None, "cap", "SD-R1", 0, False, "objections/OBJ-R1"),
        (R2, "O7", "record", "PEN-R2-1", 0, False, "credit_repairs/REP-R2"),
        (R2, "O7", "record", "PEN-R2-2", -60, False, None),
        (R4, "S5", "record", "SR-R4", 10, False, None)]


def test_first_night_notifies_nobody(nights):
    _, after = nights
    assert after["D"]["evaluation"] == {R1: ("E", 920), R2: ("B", 820), R3: ("A", 920), R4: ("A", 920)}
    assert after["D"]["notices"] == []


def test_decisions_of_d_plus_1_change_the_results_and_notify_once(nights):
    _, after = nights
    assert after["D+1"]["evaluation"] == {R1: ("A", 920), R2: ("A", 860), R3: ("A", 920), R4: ("A", 930)}
    assert after["D+1"]["notices"] == [
        (R1, "objection_upheld", "E", "A", 920, 920, D1),         # the serious dishonesty record was an error
        (R2, "credit_repair", "B", "A", 820, 860, D1),            # one of two severe penalties repaired
        (R4, "self_report_confirmed", "A", "A", 920, 930, D1),    # a national honor: +10
    ]
    assert after["D+1 rerun"]["notices"] == after["D+1"]["notices"]
    assert after["D+1 rerun"]["evaluation"] == after["D+1"]["evaluation"]


def test_a_later_change_is_not_notified_again_for_a_decision_already_taken_in(nights):
    _, after = nights
    assert after["D+2"]["evaluation"][R4] == ("A", 905)  # tax rating A -> B on D+2: not a re-evaluation
    assert after["D+2"]["notices"] == after["D+1"]["notices"]


def test_a_repair_approved_on_d_plus_1_counts_from_that_day_not_before(nights):
    _, after = nights
    assert (after["D"]["R2 O7"], after["D+1"]["R2 O7"]) == (0, 40)  # 100 - 2 x 60 floored, then 100 - 60


def test_a_pending_self_report_changes_nothing(nights):
    _, after = nights
    assert after["D"]["evaluation"][R3] == after["D+1"]["evaluation"][R3] == ("A", 920)
    assert not [n for n in after["D+1"]["notices"] if n[0] == R3]


def test_unknown_references_are_listed_for_the_credit_office_and_change_no_score(nights):
    url, after = nights
    assert after["D+2"]["listed"] == [
        ("credit_repairs", "REP-X", "penalties/PEN-GONE", "target_not_found", D2),
        ("objections", "OBJ-X", "penalties/PEN-NEVER", "target_not_found", D2),
        ("self_reports", "SR-NOBODY", NOBODY, "unknown_enterprise", D2),
        ("self_reports", "SR-R5", R5, "outside_population", D2),
    ]
    assert R5 not in after["D+1"]["evaluation"] and NOBODY not in after["D+1"]["evaluation"]


def test_the_credit_office_sees_a_nights_unresolved_references_once_published_never_while_built(nights):
    _, after = nights
    assert after["D"]["listed before"] == [] and after["D+1"]["built"]  # D+1 brings the first ones
    runs = list(after.values())
    for previous, current in zip(runs, runs[1:]):
        assert current["listed before"] == previous["listed"]  # the night built but not yet published: unseen
    assert all(run["listed"] == run["built"] for run in runs)


def test_decisions_that_change_no_result_notify_nobody(make_database):
    """R2 with four severe penalties (O7 floored at 0): the repair of one and an upheld objection against another,
    both of D+1, leave two, still 0 points. The decisions are taken in, but no result changed: no notice."""
    url = loaded_warehouse(make_database, "rights")
    with warehouse.connect(url) as conn:
        load.archive_dataset_dir(conn, DATASETS / "rights_unchanged", "unchanged")
    results = {}
    for day in (D, D1):
        build_marts(day, warehouse_url=url, schema_suffix="")
        publish(day, warehouse_url=url, run_id=f"night-{day}")
        results[day] = (evaluation(url)[R2], o7(url, R2))
        assert unexplained(url, published=True) == []
    assert results[D1] == results[D] == (("B", 820), 0)
    assert sorted(query(url, "select source_resource, source_id, reason from publication.rights_decisions_seen"
                             " where uscc = %s", (R2,))) == [("credit_repairs", "REP-R2", "credit_repair"),
                                                              ("objections", "OBJ-R2", "objection_upheld")]
    assert [n for n in query(url, NOTICES) if n[0] == R2] == []
