"""DAG integrity: every DAG imports, has an owner, tags and retries; credit_nightly's schedule,
evaluation date and shape; and parsing the DAG folder touches no database or connection."""
from __future__ import annotations

import contextlib
import datetime as dt
import json
import re
from pathlib import Path
from unittest import mock

import pendulum
import pytest

from creditplus import config, orchestration
from creditplus.resources import RESOURCES

CST = config.CST


@pytest.fixture(scope="session")
def manifest() -> dict:
    from creditplus import nightly

    return json.loads(nightly.ensure_manifest().read_text())


@pytest.fixture(scope="session")
def dagbag(airflow_home, manifest):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(config.DAGS_DIR))


@pytest.fixture(scope="session")
def nightly_dag(dagbag):
    return dagbag.dags["credit_nightly"]


def test_every_dag_imports(dagbag):
    assert dagbag.import_errors == {}
    assert "credit_nightly" in dagbag.dag_ids


def test_every_dag_has_owner_tags_retries_with_backoff(dagbag):
    """Retries with backoff are every DAG's default; a task may opt out explicitly (a non-transient check)."""
    for dag in dagbag.dags.values():
        assert dag.tags, f"{dag.dag_id} has no tags"
        assert dag.doc_md, f"{dag.dag_id} has no doc_md"
        assert dag.default_args.get("retries", 0) >= 1, f"{dag.dag_id} has no retries"
        assert dag.default_args.get("retry_exponential_backoff"), f"{dag.dag_id} retries without backoff"
        for t in dag.tasks:
            assert t.owner and t.owner != "airflow", f"{dag.dag_id}.{t.task_id} has no owner"


def test_every_nightly_task_is_retried_except_the_quality_verdicts(nightly_dag):
    verdicts = {"check_feed", "check_marts"}
    assert all(t.retries >= 1 for t in nightly_dag.tasks if t.task_id not in verdicts)
    assert all(nightly_dag.task_dict[t].retries == 0 for t in verdicts)


def test_nightly_runs_daily_at_0130_shanghai_without_catchup(nightly_dag):
    from airflow.timetables.trigger import CronTriggerTimetable

    tt = nightly_dag.timetable
    assert isinstance(tt, CronTriggerTimetable)
    assert tt._expression == "30 1 * * *" and tt._timezone.name == "Asia/Shanghai"
    # no start_date: every past day can be backfilled (a start_date would silently skip the days before it)
    # and a new deployment waits for the next 01:30 instead of running at once
    assert nightly_dag.start_date is None and nightly_dag.catchup is False
    assert tt._run_immediately is False
    nxt = tt._get_next(pendulum.datetime(2026, 11, 26, 12, 0, tz="UTC"))
    assert nxt == pendulum.datetime(2026, 11, 27, 1, 30, tz="Asia/Shanghai")


def test_the_nightly_schedule_can_be_turned_off(monkeypatch):
    """Only triggered nights (a test deployment: unpaused at 02:14 +08:00, the DAG ran that day's night at once)."""
    from creditplus import orchestration

    monkeypatch.setenv("CREDITPLUS_NIGHTLY_SCHEDULE", "off")
    assert orchestration.nightly_schedule() is None
    monkeypatch.setenv("CREDITPLUS_NIGHTLY_SCHEDULE", "sometimes")
    with pytest.raises(ValueError, match="CREDITPLUS_NIGHTLY_SCHEDULE must be on or off, not 'sometimes'"):
        orchestration.nightly_schedule()


def _dbt_nodes(manifest) -> set[str]:
    return {n["name"] for n in manifest["nodes"].values()
            if n["resource_type"] in ("model", "seed") and n["package_name"] == manifest["metadata"]["project_name"]
            if n["config"].get("materialized") != "ephemeral" and n["config"].get("enabled", True)}


def _common_shape(dag) -> set[str]:
    """What both renderings share; returns the dbt task ids."""
    tasks = dag.task_dict
    dbt_tasks = {tid for tid in tasks if tid.startswith(f"{orchestration.DBT_GROUP_ID}.") or tid == "dbt_build"}
    assert tasks["setup"].downstream_task_ids == {"extract"}
    extract = tasks["extract"]
    assert extract.op_kwargs_expand_input.value["resource"] == [r.name for r in RESOURCES]
    assert extract.pool == "creditplus_platform"  # the platform's requests share a pool (deployment.PLATFORM_POOL)
    assert extract.downstream_task_ids == {"check_feed"}  # the feed gate runs before any dbt node
    first_dbt = {t for t in dbt_tasks if not tasks[t].upstream_task_ids - {"check_feed"}}
    assert first_dbt and tasks["check_feed"].downstream_task_ids == first_dbt
    last_dbt = {t for t in dbt_tasks if "check_marts" in tasks[t].downstream_task_ids}
    assert last_dbt and tasks["check_marts"].upstream_task_ids == last_dbt
    assert tasks["check_marts"].downstream_task_ids == {"publish"}  # nothing unvalidated is published
    assert tasks["publish"].downstream_task_ids == {"report"}
    assert [o.uri for o in tasks["publish"].outlets] == [orchestration.PUBLICATION_ASSET]
    for t in dag.tasks:  # every task: a time limit, and its failure recorded
        assert t.execution_timeout is not None, t.task_id
        callbacks = t.on_failure_callback if isinstance(t.on_failure_callback, list) else [t.on_failure_callback]
        assert orchestration.record_task_failure in callbacks, t.task_id
    for tid in (t for t in dbt_tasks if hasattr(tasks[t], "vars")):  # dbt reads the date and warehouse at run time
        assert not tasks[tid].vars  # a var would make every task parse the whole project again
        assert tasks[tid].env["CREDITPLUS_EVALUATION_DATE"] == orchestration.EVALUATION_DATE_TEMPLATE
        assert "conn.creditplus_warehouse.host" in tasks[tid].env["CREDITPLUS_PGHOST"]
    return dbt_tasks


def test_nightly_shape_under_the_scheduler(nightly_dag, manifest):
    """Cosmos's watcher: one producer runs `dbt build`; every seed and model has its task (and its tests one)."""
    tasks = nightly_dag.task_dict
    dbt_tasks = _common_shape(nightly_dag)
    producer = tasks["dbt.dbt_producer_watcher"]
    assert type(producer).__name__ == "DbtProducerWatcherOperator" and producer.upstream_task_ids == {"check_feed"}
    watched = {re.sub(r"[._](run|seed)$", "", tid.split(".", 1)[1]) for tid in dbt_tasks if tid.endswith(("run", "seed"))}
    assert _dbt_nodes(manifest) <= watched
    sensors = [tasks[t] for t in dbt_tasks if t != "dbt.dbt_producer_watcher" and not t.endswith("_done")]
    assert all(s.deferrable and s.poke_interval == 1 for s in sensors)  # waiting holds no worker slot


def test_nightly_shape_in_process(monkeypatch):
    """dag.test() cannot run the watcher: the in-process night runs the same dbt build as one task."""
    from airflow.dag_processing.dagbag import DagBag

    monkeypatch.setenv("CREDITPLUS_IN_PROCESS", "1")
    dag = DagBag(dag_folder=str(config.DAGS_DIR)).dags["credit_nightly"]
    assert _common_shape(dag) == {"dbt_build"}
    assert dag.task_dict["dbt_build"].python_callable is orchestration.build_night


def test_alerts_only_where_an_address_is_configured(monkeypatch):
    """A failed run mails (Airflow's SMTP notifier); a run not done by the deadline (07:00 for the 01:30 run)
    raises a deadline alert through the triggerer; nothing without CREDITPLUS_ALERT_EMAIL."""
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
    from airflow.sdk.definitions.deadline import DagRunQueuedAtDeadline

    monkeypatch.delenv("CREDITPLUS_ALERT_EMAIL", raising=False)
    assert orchestration.dag_alerts("credit_nightly") == {}
    monkeypatch.setenv("CREDITPLUS_ALERT_EMAIL", "ops@example.test")
    alerts = orchestration.dag_alerts("credit_nightly")
    [notifier] = alerts["on_failure_callback"]
    assert isinstance(notifier, SmtpNotifier) and notifier.to == "ops@example.test"
    deadline = alerts["deadline"]
    assert isinstance(deadline.reference, DagRunQueuedAtDeadline)
    assert deadline.interval == dt.timedelta(hours=5, minutes=30)
    assert deadline.callback.path == "airflow.providers.smtp.notifications.smtp.SmtpNotifier"
    monkeypatch.setenv("CREDITPLUS_PUBLISH_DEADLINE", "01:00")
    with pytest.raises(ValueError, match="after the schedule time 01:30"):
        orchestration.dag_alerts("credit_nightly")


def test_dbt_templates_render_the_evaluation_date(nightly_dag):
    from jinja2 import Environment

    env = Environment()
    env.globals.update(nightly_dag.user_defined_macros)
    template = env.from_string(orchestration.EVALUATION_DATE_TEMPLATE)
    logical = pendulum.datetime(2026, 11, 27, 1, 30, tz="Asia/Shanghai")
    assert template.render(logical_date=logical, params={"evaluation_date": None}) == "2026-11-26"
    assert template.render(logical_date=logical, params={"evaluation_date": "2026-01-05"}) == "2026-01-05"


# ---------------------------------------------------------------- evaluation date
@pytest.mark.parametrize(("logical", "expected"), [
    (dt.datetime(2026, 11, 27, 1, 30, tzinfo=CST), dt.date(2026, 11, 26)),       # the scheduled run
    (dt.datetime(2026, 11, 26, 17, 30, tzinfo=dt.timezone.utc), dt.date(2026, 11, 26)),  # same instant in UTC
    (dt.datetime(2026, 11, 26, 16, 0, tzinfo=dt.timezone.utc), dt.date(2026, 11, 26)),   # 00:00 +08:00 on the 27th
    (dt.datetime(2026, 11, 26, 15, 59, 59, tzinfo=dt.timezone.utc), dt.date(2026, 11, 25)),  # 23:59:59 +08:00
    (dt.datetime(2027, 1, 1, 1, 30, tzinfo=CST), dt.date(2026, 12, 31)),         # across a year
    (dt.datetime(2028, 3, 1, 0, 0, tzinfo=CST), dt.date(2028, 2, 29)),           # leap day
])
def test_evaluation_date_is_the_previous_day_in_shanghai(logical, expected):
    assert orchestration.evaluation_date(logical) == expected
    assert orchestration.evaluation_date(pendulum.instance(logical), {"evaluation_date": None}) == expected


def test_evaluation_date_param_wins():
    logical = dt.datetime(2026, 11, 27, 1, 30, tzinfo=CST)
    assert orchestration.evaluation_date(logical, {"evaluation_date": "2026-06-30"}) == dt.date(2026, 6, 30)
    assert orchestration.evaluation_date(None, {"evaluation_date": "2026-06-30"}) == dt.date(2026, 6, 30)
    with pytest.raises(ValueError, match="evaluation_date"):
        orchestration.evaluation_date(None, {})


@pytest.mark.parametrize("day", [dt.date(2026, 1, 1), dt.date(2026, 11, 26), dt.date(2026, 12, 31), dt.date(2028, 2, 29)])
def test_logical_date_for_round_trips(day):
    logical = orchestration.logical_date_for(day)
    assert logical.astimezone(CST).time() == dt.time(1, 30)
    assert orchestration.evaluation_date(logical) == day


# ---------------------------------------------------------------- no I/O at parse time
class ParseTimeCalls:
    """Counts database, connection and socket calls made while DAG files are parsed
    (as apache/airflow does for its example DAGs); the calls themselves still happen."""

    TARGETS = {
        "BaseHook.get_connection": ("airflow.sdk", "BaseHook", "get_connection"),
        "Connection.get": ("airflow.sdk", "Connection", "get"),
        "psycopg.connect": ("psycopg", None, "connect"),
        "socket.connect": ("socket", "socket", "connect"),
        "socket.create_connection": ("socket", None, "create_connection"),
    }

    def __init__(self):
        self.calls = dict.fromkeys(self.TARGETS, 0)

    def _counting(self, name: str, original):
        def wrapper(*args, **kwargs):
            self.calls[name] += 1
            return original(*args, **kwargs)
        return wrapper

    def parse(self, folder: Path):
        import importlib

        from airflow.dag_processing.dagbag import DagBag

        with contextlib.ExitStack() as stack:
            for name, (module, cls, attr) in self.TARGETS.items():
                owner = importlib.import_module(module)
                owner = getattr(owner, cls) if cls else owner
                stack.enter_context(mock.patch.object(owner, attr, self._counting(name, getattr(owner, attr))))
            return DagBag(dag_folder=str(folder))


def test_parsing_the_dags_makes_no_database_or_connection_calls(dagbag):
    counter = ParseTimeCalls()
    bag = counter.parse(config.DAGS_DIR)
    assert bag.import_errors == {} and "credit_nightly" in bag.dag_ids
    assert counter.calls == dict.fromkeys(counter.calls, 0)


def test_the_parse_time_counter_sees_a_dag_that_connects(dagbag, tmp_path):
    (tmp_path / "connecting_dag.py").write_text(
        "import psycopg\n"
        "from airflow.sdk import BaseHook, dag\n"
        "for call in (lambda: BaseHook.get_connection('creditplus_warehouse'),\n"
        "             lambda: psycopg.connect('postgresql://127.0.0.1:1/none', connect_timeout=1)):\n"
        "    try:\n        call()\n    except Exception:\n        pass\n"
        "@dag(schedule=None)\ndef connecting():\n    pass\nconnecting()\n"
    )
    counter = ParseTimeCalls()
    assert "connecting" in counter.parse(tmp_path).dag_ids
    assert counter.calls["BaseHook.get_connection"] == 1
    assert counter.calls["psycopg.connect"] == 1
