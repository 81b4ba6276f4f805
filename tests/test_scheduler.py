"""The production path: Airflow's api-server, scheduler, dag-processor, triggerer and a Celery worker on
Redis, started by ``creditplus airflow up`` on a fresh metadata database and a fresh warehouse, run the
nights; what they publish equals what the in-process night publishes. A backfill through Airflow's REST
API, a worker killed in the middle of the dbt build, an asset event from the credit office's case
system, a downstream (agency) DAG on the publication asset, mails to operators on a failed night and on
a missed deadline (a real SMTP server on loopback). Everything started is stopped, also on failure.
"""
from __future__ import annotations

import datetime as dt
import json
import subprocess
import time
from pathlib import Path

import psycopg
import pytest

from conftest import BASIC_DAY, CLI, cli_env, published
from creditplus import airflow_services, orchestration
from creditplus.airflow_api import AirflowApi
from creditplus.resources import RESOURCES
from creditplus.warehouse import free_port

pytestmark = pytest.mark.slow

DAG_ID = "credit_nightly"
NIGHTS = ["2026-11-24", "2026-11-25", BASIC_DAY]
REDIS_DB = 13  # this suite's own broker database (flushed first): no other Airflow's workers share it
NIGHT_TIMEOUT_S = 900



class SmtpSink:
    """A real SMTP server on loopback that keeps what it receives (aiosmtpd)."""

    def __init__(self):
        from aiosmtpd.controller import Controller

        self.messages: list[dict] = []
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                from email import message_from_bytes
                from email.header import decode_header, make_header

                message = message_from_bytes(envelope.content)
                sink.messages.append({"to": envelope.rcpt_tos, "subject": str(make_header(decode_header(message["Subject"])))})
                return "250 OK"

        self.port = free_port()
        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def wait_for(self, text: str, timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for message in self.messages:
                if text in message["subject"]:
                    return message
            time.sleep(0.5)
        raise AssertionError(f"no mail with {text!r} within {timeout} s; received {self.messages}")


AGENCY_DAG = '''
"""An agency's DAG: runs on each new creditplus publication and keeps what the event said."""
import json
from pathlib import Path

from airflow.sdk import Asset, dag, task


@dag(schedule=[Asset("{asset}")], tags=["agency"], default_args={{"owner": "agency"}})
def agency_reads_publication():
    @task
    def record(triggering_asset_events=None):
        extras = [event.extra for events in triggering_asset_events.values() for event in events]
        with open("{out}", "a") as out:
            out.write(json.dumps(extras) + "\\n")

    record()


agency_reads_publication()
'''


@pytest.fixture(scope="module")
def deployment(make_database, basic_platform, tmp_path_factory, monkeypatch_module):
    """`creditplus airflow up` on a fresh metadata database and warehouse; stopped whatever happens."""
    import redis

    redis.Redis.from_url(f"redis://127.0.0.1:6379/{REDIS_DB}").flushdb()
    home = tmp_path_factory.mktemp("creditplus-home")
    agency = tmp_path_factory.mktemp("agency-dags")
    agency_out = agency / "publications.jsonl"
    (agency / "agency_reads_publication.py").write_text(
        AGENCY_DAG.format(asset=orchestration.PUBLICATION_ASSET, out=agency_out))
    warehouse_url = make_database("cp_scheduler")
    sink = SmtpSink()
    sink.controller.start()
    settings = {
        # a task whose worker died is failed (and retried) after 20 s instead of 2 minutes, and one the
        # dead worker had taken from the queue but not started is queued again after 90 s instead of 10 minutes
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
        "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
        # an agency's DAGs beside the project's: Airflow's own DAG bundles
        "AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST": json.dumps([
            {"name": "dags-folder", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle", "kwargs": {}},
            {"name": "agency", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
             "kwargs": {"path": str(agency)}}]),
    }
    env = cli_env(home, warehouse_url, *basic_platform,
                  CREDITPLUS_REDIS_URL=f"redis://127.0.0.1:6379/{REDIS_DB}",
                  CREDITPLUS_AIRFLOW_PORT=str(free_port()),
                  AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
                  AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
                  CREDITPLUS_AIRFLOW_SETTINGS=json.dumps(settings),
                  CREDITPLUS_ALERT_EMAIL="credit-office@example.test",
                  CREDITPLUS_SMTP_URL=f"smtp://127.0.0.1:{sink.port}?from_email=creditplus%40example.test"
                                      "&disable_ssl=true&disable_tls=true",
                  CREDITPLUS_PUBLISH_DEADLINE="01:30:20",  # every night here outlasts its 20 s: a deadline mail
                  # only the nights the tests trigger (unpaused at 02:14 +08:00, the DAG ran that day's 01:30 night first)
                  CREDITPLUS_NIGHTLY_SCHEDULE="off")
    monkeypatch_module.setenv("CREDITPLUS_HOME", str(home))  # this process reads the services' state
    try:
        started = time.monotonic()
        up = subprocess.run([CLI, "airflow", "up"], env=env, capture_output=True, text=True, timeout=600)
        assert up.returncode == 0, up.stdout + up.stderr
        info = airflow_services.state()
        api = AirflowApi(info["api_url"], info["password_file"])
        yield {"api": api, "env": env, "warehouse_url": warehouse_url, "home": home, "sink": sink, "up": up,
               "agency_out": agency_out, "info": info, "startup_s": time.monotonic() - started}
    finally:
        subprocess.run([CLI, "airflow", "down"], env=env, capture_output=True, text=True, timeout=300)
        sink.controller.stop()
        assert not [r for r in airflow_services.running_services() if r.alive]


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def wait_for_runs(api: AirflowApi, dag_id: str, count: int, timeout: float = NIGHT_TIMEOUT_S, **filters) -> list[dict]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = api.runs(dag_id, **filters)
        if len(runs) >= count and all(r["state"] in ("success", "failed") for r in runs):
            return runs
        time.sleep(2)
    raise AssertionError(f"{dag_id}: {count} finished runs expected within {timeout} s, have {api.runs(dag_id)}")


@pytest.fixture(scope="module")
def backfill(deployment):
    """Three consecutive nights graded by `creditplus backfill` (OPERATIONS.md): runs triggered through the
    REST API, run by the scheduler one at a time."""
    started = time.monotonic()
    result = subprocess.run([CLI, "backfill", "--from", NIGHTS[0], "--to", NIGHTS[-1]], env=deployment["env"],
                            capture_output=True, text=True, timeout=NIGHT_TIMEOUT_S * len(NIGHTS))
    runs = deployment["api"].runs(DAG_ID)
    return {"result": result, "runs": runs, "seconds": time.monotonic() - started}


def test_airflow_up_runs_the_five_services_on_celery(deployment):
    info, up = deployment["info"], deployment["up"].stdout.splitlines()
    assert up[-5:] == [
        f"airflow: running with the CeleryExecutor on redis://127.0.0.1:6379/{REDIS_DB}",
        f"  UI and REST API: {info['api_url']}  (user admin, password in {info['password_file']})",
        f"  metadata database: {info['metadata_url']}",
        f"  service logs: {info['logs']}; task logs: {info['task_logs']}",
        "  `creditplus airflow status` lists the services; `creditplus airflow down` stops them"]
    assert info["metadata_url"].endswith("_airflow") and oct(Path(info["password_file"]).stat().st_mode)[-3:] == "600"
    assert info["executor"] == "CeleryExecutor" and info["broker_url"].endswith(f"/{REDIS_DB}")
    services = airflow_services.running_services()
    assert [s.name for s in services] == ["apiserver", "scheduler", "dag-processor", "triggerer", "worker"]
    assert all(s.alive for s in services)
    status = subprocess.run([CLI, "airflow", "status"], env=deployment["env"], capture_output=True, text=True)
    assert status.returncode == 0, status.stdout + status.stderr
    assert "executor CeleryExecutor" in status.stdout
    for s in services:
        assert f"{s.name:<14} pid {s.pid:<8} running" in status.stdout
    assert "health: dag_processor, metadatabase, scheduler, triggerer" in status.stdout
    pool = deployment["api"].request("GET", "/pools/creditplus_platform").json()  # the extract tasks' pool
    assert pool["slots"] == 2


def test_a_backfill_of_three_nights_archives_each_version_once_and_publishes_the_last(backfill, deployment):
    result, runs = backfill["result"], backfill["runs"]
    assert result.returncode == 0, result.stdout + result.stderr
    assert [line for line in result.stdout.splitlines() if line.startswith("  ")] == [
        f"  {day}: success (run {run['dag_run_id']})" for day, run in zip(NIGHTS, runs)]
    assert [r["state"] for r in runs] == ["success"] * 3, runs  # and no other run: no scheduled night sneaked in
    starts = [r["start_date"] for r in runs]
    assert starts == sorted(starts) and all(r["end_date"] <= nxt["start_date"] for r, nxt in zip(runs, runs[1:]))
    assert [orchestration.evaluation_date(dt.datetime.fromisoformat(r["logical_date"])).isoformat()
            for r in runs] == NIGHTS
    with psycopg.connect(deployment["warehouse_url"]) as conn:
        for resource in RESOURCES:  # unique on key + updated_at: count(*) = distinct versions, none twice
            keys = ", ".join(resource.key)
            total, distinct = conn.execute(f"select count(*), count(distinct ({keys}, updated_at)) from raw.{resource.name}").fetchone()
            assert total == distinct, resource.name
        loads = conn.execute("select evaluation_date::text, count(*) from audit.load_runs group by 1 order by 1").fetchall()
        assert loads == [(day, len(RESOURCES)) for day in NIGHTS]  # one attempt per resource and night
        later = conn.execute("select count(*) from audit.load_runs l join audit.load_runs p on p.resource = l.resource"
                             " and p.evaluation_date < l.evaluation_date where l.archived > 0 and l.window_start is null"
                             ).fetchone()[0]
        assert later == 0  # later nights extracted incrementally, not from the beginning
        current = conn.execute("select evaluation_date::text, published_by from audit.publications where is_current").fetchone()
        assert current == (BASIC_DAY, "credit_nightly")
        assert conn.execute("select count(*) from audit.publications").fetchone()[0] == 3


def test_the_scheduled_night_publishes_what_the_in_process_night_publishes(backfill, deployment, in_process_night):
    assert in_process_night["result"].returncode == 0, in_process_night["result"].stdout
    scheduled, in_process = published(deployment["warehouse_url"]), published(in_process_night["url"])
    assert len(scheduled[0]) > 100 and len(scheduled[1]) > 2000
    assert scheduled == in_process  # every enterprise and every indicator


def test_the_publication_asset_runs_an_agency_dag(backfill, deployment):
    runs = wait_for_runs(deployment["api"], "agency_reads_publication", 3, timeout=180)
    assert [r["state"] for r in runs] == ["success"] * 3
    seen = [extra for line in deployment["agency_out"].read_text().splitlines() for extra in json.loads(line)]
    assert {e["evaluation_date"] for e in seen} == set(NIGHTS)
    assert {e["model_version"] for e in seen} == {"v1"} and all(e["publication_id"] for e in seen)


def test_a_night_past_its_deadline_mails_the_operators(backfill, deployment):
    message = deployment["sink"].wait_for("credit_nightly has not published by its deadline")
    assert message["to"] == ["credit-office@example.test"]


def test_an_asset_event_from_the_case_system_reevaluates_the_named_enterprises(backfill, deployment):
    api = deployment["api"]
    with psycopg.connect(deployment["warehouse_url"]) as conn:
        uscc = conn.execute("select uscc from gov_share.enterprise_evaluation order by uscc limit 1").fetchone()[0]
        before = conn.execute("select publication_id from audit.publications where is_current").fetchone()[0]
    api.wait_for_dag("credit_reevaluation")
    api.post_asset_event("creditplus://warehouse/rights_decisions", {"usccs": [uscc], "case": "objection 42"})
    runs = wait_for_runs(api, "credit_reevaluation", 1)
    assert [r["state"] for r in runs] == ["success"] and runs[0]["run_type"] == "asset_triggered"
    with psycopg.connect(deployment["warehouse_url"]) as conn:
        current = conn.execute("select publication_id, published_by, evaluation_date::text from audit.publications"
                               " where is_current").fetchone()
    assert current[0] > before and current[1:] == ("credit_reevaluation", BASIC_DAY)


def test_a_failed_night_is_mailed_and_says_which_task_failed_and_why(backfill, deployment):
    from creditplus import nightly

    api = deployment["api"]
    run_id = api.trigger(DAG_ID, None, conf={"evaluation_date": "2099-01-01"}, run_id="operator-typo-2099")
    outcome = api.wait(DAG_ID, run_id, timeout=NIGHT_TIMEOUT_S)
    assert outcome.state == "failed"
    lines = nightly.failure_lines(outcome, deployment["warehouse_url"])
    assert lines[0] == "setup: cannot grade 2099-01-01: it is after today " \
                       f"({dt.datetime.now(orchestration.config.CST).date()}, +08:00)"
    assert next(t for t in outcome.tasks if t.task_id == "setup").try_number == 1  # a refused date is not retried
    assert lines[1].endswith(" downstream tasks not run") and len(lines) == 2
    message = deployment["sink"].wait_for("credit_nightly FAILED: operator-typo-2099")
    assert message["to"] == ["credit-office@example.test"]
    with psycopg.connect(deployment["warehouse_url"]) as conn:  # the channels kept the last good night
        assert conn.execute("select evaluation_date::text from audit.publications where is_current").fetchone() == (BASIC_DAY,)


@pytest.fixture(scope="module")
def rotated(backfill, deployment):
    """OPERATIONS.md, "Rotate the platform token": down, the new token in the environment, up. The platform
    now accepts only the new token, so every later night proves the services took it."""
    from creditplus.platform.server import running

    from conftest import BASIC_CASE

    with running(BASIC_CASE / "dataset", token="rotated-token-5f2e") as platform_url:
        env = {**deployment["env"], "CREDITPLUS_PLATFORM_URL": platform_url,
               "CREDITPLUS_PLATFORM_TOKEN": "rotated-token-5f2e"}
        down = subprocess.run([CLI, "airflow", "down"], env=env, capture_output=True, text=True, timeout=300)
        stopped = airflow_services.running_services()
        up = subprocess.run([CLI, "airflow", "up"], env=env, capture_output=True, text=True, timeout=600)
        yield {"env": env, "down": down, "up": up, "stopped": stopped}


def test_rotating_the_platform_token_restarts_the_services_with_it(rotated):
    assert rotated["down"].stdout == "airflow: stopped worker, triggerer, dag-processor, scheduler, apiserver\n"
    assert rotated["stopped"] == []
    assert rotated["up"].returncode == 0, rotated["up"].stdout + rotated["up"].stderr
    services = airflow_services.running_services()
    assert len(services) == 5 and all(s.alive for s in services)
    for service in services:
        environ = Path(f"/proc/{service.pid}/environ").read_bytes()
        if service.name in ("scheduler", "triggerer"):  # the others rewrite their titles over their environment
            assert b"rotated-token-5f2e" in environ and b"basic-case-token" not in environ, service.name
        for pid in airflow_services._session_members(service.pid):  # never in a process's arguments
            assert b"rotated-token" not in Path(f"/proc/{pid}/cmdline").read_bytes(), service.name
    assert "rotated-token" not in rotated["up"].stdout + rotated["up"].stderr


def test_a_worker_killed_during_the_dbt_build_is_restarted_and_the_night_publishes_the_same(rotated, deployment):
    """(After the token was rotated: this night also proves the services use the new token.)"""
    env = rotated["env"]
    info = airflow_services.state()
    api = AirflowApi(info["api_url"], info["password_file"])
    before = published(deployment["warehouse_url"])
    night = subprocess.Popen([CLI, "nightly", "--date", BASIC_DAY, "--scheduler"], env=env, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    try:
        # the build is under way (the features are built): the nodes still to come are then run by their own tasks
        run_id = _wait_until_built(api, "model__creditplus__int_features_status")
        killed = airflow_services.kill("worker")
        assert not any(s.alive for s in airflow_services.running_services() if s.name == "worker")
        restart = subprocess.run([CLI, "airflow", "up"], env=env, capture_output=True, text=True, timeout=600)
        assert restart.returncode == 0, restart.stdout + restart.stderr  # starts only what is missing: the worker
        restarted = next(s for s in airflow_services.running_services() if s.name == "worker")
        assert restarted.alive and restarted.pid != killed
        out, err = night.communicate(timeout=NIGHT_TIMEOUT_S)
    finally:
        night.kill()
    assert night.returncode == 0, out + err
    assert f"credit_nightly {BASIC_DAY}: success" in out
    tasks = api.task_states(DAG_ID, run_id)
    assert all(t.state in ("success", "skipped") for t in tasks), [(t.name, t.state) for t in tasks if t.state != "success"]
    assert any(t.try_number > 1 for t in tasks if t.task_id.startswith("dbt.")), "no dbt task was retried"
    gate = api.request("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/check_marts/xcomEntries/return_value")
    value = gate.json()["value"]
    assert (json.loads(value) if isinstance(value, str) else value)["dbt_tests_rerun"] is True  # the nodes run one by one had no tests: the gate ran them
    assert published(deployment["warehouse_url"]) == before


def _wait_until_built(api: AirflowApi, status_key: str, timeout: float = 600) -> str:
    """The run whose dbt producer, running, has reported ``status_key`` (Cosmos's XCom per node; a try's
    XComs are cleared when it starts, so an earlier run's do not count)."""
    producer = "dbt.dbt_producer_watcher"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for run in (r for r in api.runs(DAG_ID) if r["state"] == "running"):
            if not any(t.task_id == producer and t.state == "running" for t in api.task_states(DAG_ID, run["dag_run_id"])):
                continue
            path = f"/dags/{DAG_ID}/dagRuns/{run['dag_run_id']}/taskInstances/{producer}/xcomEntries/{status_key}"
            if api.request("GET", path, ok=(200, 404)).status_code == 200:
                return run["dag_run_id"]
        time.sleep(0.3)
    raise AssertionError(f"no running dbt build reported {status_key} within {timeout} s")
