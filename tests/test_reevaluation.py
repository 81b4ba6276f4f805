"""The credit_reevaluation DAG run by Airflow (``dag.test()``) against a real warehouse: a repair that
arrived after the night of D+1 was published re-scores one enterprise, whose rows alone change, with one
notice; a malformed or unknown code fails the trigger with a clear message and changes nothing."""
from __future__ import annotations


import pytest

from creditplus import airflow_env, config, load, warehouse
from creditplus.reevaluation import ReevaluationError, validate
from test_notices import R2
from test_scoring import unexplained
from test_supply_chain import D1, DATASETS, loaded_warehouse, night, query

STATE = {"enterprises": "select * from gov_share.enterprise_evaluation order by uscc",
         "indicators": "select * from gov_share.indicator_scores order by uscc, indicator_code",
         "explanations": "select x.uscc, x.indicator_code, x.item_kind, x.record_key, x.points, x.excluded_by"
                         " from publication.indicator_explanation x join audit.publications p using (publication_id)"
                         " where p.is_current order by 1, 2, 3, 4",
         "notices": "select uscc, reason, old_grade, new_grade, old_score, new_score, evaluation_date"
                    " from regulator.notifications order by notification_id",
         "publications": "select publication_id, evaluation_date, published_by from audit.publications order by 1",
         # the nightly's own marts, which a re-evaluation (built in the *_reevaluation schemas) never touches
         "nightly_marts": "select * from marts.fct_enterprise_evaluation order by uscc"}


def state(url: str) -> dict[str, list[tuple]]:
    return {name: query(url, statement) for name, statement in STATE.items()}


@pytest.fixture(scope="module")
def dag(make_database, airflow_home, tmp_path_factory):
    """The DAG, run with the session's Airflow metadata and the warehouse connection set."""
    url = loaded_warehouse(make_database, "rights")
    night(url, D1)  # night D+1 is published
    with pytest.MonkeyPatch.context() as mp:
        for name, value in {**airflow_env.connection_env(url, "http://127.0.0.1:9", "unused"),
                            "CREDITPLUS_HOME": str(tmp_path_factory.mktemp("creditplus-home"))}.items():
            mp.setenv(name, value)
        from airflow.dag_processing.dagbag import DagBag

        bag = DagBag(dag_folder=str(config.DAGS_DIR / "credit_reevaluation.py"))
        assert bag.import_errors == {}
        yield url, bag.dags["credit_reevaluation"]


def test_a_late_repair_republishes_one_enterprise_only(dag):
    url, reevaluation_dag = dag
    before = state(url)
    with warehouse.connect(url) as conn:  # a repair approved on D+1 that arrived after the night
        load.archive_dataset_dir(conn, DATASETS / "rights_late", "late")
    run = reevaluation_dag.test(run_conf={"usccs": [R2]})
    assert run.state == "success"
    after = state(url)
    # published_at (the last column of an evaluation row) is the new publication's for every row
    rows = {"enterprises": lambda st: [r[:-1] for r in st["enterprises"]], "indicators": lambda st: st["indicators"],
            "explanations": lambda st: st["explanations"]}
    for name, of in rows.items():
        assert {r[0] for r in of(after) if r not in of(before)} == {R2}, name
        assert [r for r in of(after) if r[0] != R2] == [r for r in of(before) if r[0] != R2], name
    assert query(url, "select grade, total_score from gov_share.enterprise_evaluation where uscc = %s", (R2,)) == [
        ("A", 920)]  # both severe penalties repaired
    assert [r[3:] for r in after["explanations"] if r[:3] == (R2, "O7", "record")] == [
        ("PEN-R2-1", 0, "credit_repairs/REP-R2"), ("PEN-R2-2", 0, "credit_repairs/REP-R2-LATE")]
    assert unexplained(url, published=True) == []
    assert after["notices"] == before["notices"] + [(R2, "credit_repair", "A", "A", 860, 920, D1)]
    assert after["publications"][:-1] == before["publications"]
    assert after["publications"][-1][1:] == (D1, "credit_reevaluation")
    assert after["nightly_marts"] == before["nightly_marts"]
    assert query(url, "select grade, total_score from marts_reevaluation.fct_enterprise_evaluation where uscc = %s",
                 (R2,)) == [("A", 920)]


@pytest.mark.parametrize("code, message", [
    ("91231100MA1RGHT02X", "malformed credit code.*91231100MA1RGHT02X"),
    ("91231100MA1RGHT06M", "unknown credit code.*91231100MA1RGHT06M"),
])
def test_a_bad_code_fails_the_trigger_and_touches_nothing(dag, code, message):
    url, reevaluation_dag = dag
    before = state(url)
    with pytest.raises(ReevaluationError, match=message):
        validate([R2, code], warehouse_url=url)
    run = reevaluation_dag.test(run_conf={"usccs": [R2, code]})
    assert run.state == "failed"
    assert {ti.task_id: ti.state for ti in run.get_task_instances()}["validate"] == "failed"
    assert state(url) == before



def test_codes_come_from_the_param_and_every_triggering_asset_event(airflow_home):
    """An asset-triggered run reads ``usccs`` from each event's extra (Airflow's own accessor and event types)."""
    from airflow.sdk import Asset
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult
    from airflow.sdk.execution_time.context import TriggeringAssetEventsAccessor

    from creditplus.reevaluation import RIGHTS_DECISIONS_ASSET, requested_usccs

    def event(extra: dict) -> AssetEventDagRunReferenceResult:
        return AssetEventDagRunReferenceResult(
            asset={"name": RIGHTS_DECISIONS_ASSET, "uri": RIGHTS_DECISIONS_ASSET, "extra": {}}, extra=extra,
            source_task_id=None, source_dag_id=None, source_run_id=None, source_map_index=None, source_aliases=[],
            timestamp="2026-11-27T10:00:00+08:00")

    events = TriggeringAssetEventsAccessor.build(
        [event({"usccs": [R2, "91231100MA1RGHT06M"]}), event({"usccs": f"{R2}, 91231100MA1RGHT02X"}), event({})])
    assert list(events) == [Asset(RIGHTS_DECISIONS_ASSET)]
    assert requested_usccs({"usccs": []}, events) == sorted({R2, "91231100MA1RGHT06M", "91231100MA1RGHT02X"})
    assert requested_usccs({"usccs": "A1, B2 C3"}, None) == ["A1", "B2", "C3"]
    assert requested_usccs({"usccs": []}, TriggeringAssetEventsAccessor.build([])) == []
