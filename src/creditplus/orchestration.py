"""What the ``credit_nightly`` DAG runs, and its dbt/Cosmos configuration, defined once.

The DAG file only wires these together. Nothing here touches a database or an Airflow
connection until a task calls it; connections are read at run time.
"""
from __future__ import annotations

import datetime as dt
import logging
import os

from creditplus import airflow_env, config
from creditplus.resources import RESOURCES

log = logging.getLogger(__name__)

RESOURCE_NAMES: list[str] = [r.name for r in RESOURCES]
SCHEDULE_TIME = dt.time(1, 30)  # Asia/Shanghai: the nightly run for the day before
# Published by publish (extra: evaluation_date, model_version, publication_id): an agency's DAG scheduled on
# this asset runs on each new publication.
PUBLICATION_ASSET = "creditplus://warehouse/publication"


def record_task_failure(context) -> None:
    """Every creditplus task's failure callback: keep why it failed in ``audit.task_failures``, where
    ``creditplus nightly`` (either path) and operators read it without going through Airflow's logs."""
    from airflow.sdk.exceptions import AirflowFailException

    ti = context["ti"]
    exception = context.get("exception")
    if isinstance(exception, AirflowFailException):  # a verdict worded for the operator
        error = str(exception)
    elif exception:
        error = f"{type(exception).__name__}: {exception}"
    else:
        error = "failed without an exception (its process was lost or timed out; see the task log)"
    try:
        from creditplus import warehouse

        with warehouse.connect(warehouse_url(), connect_timeout=5) as conn:
            conn.execute(
                "insert into audit.task_failures (dag_id, run_id, task_id, map_index, try_number, error)"
                " values (%s, %s, %s, %s, %s, %s) on conflict (dag_id, run_id, task_id, map_index, try_number)"
                " do update set error = excluded.error, failed_at = now()",
                (ti.dag_id, ti.run_id, ti.task_id, ti.map_index, ti.try_number, error[:4000]))
    except Exception as exc:  # the warehouse itself may be why the task failed
        log.warning("could not record the failure of %s in audit.task_failures: %s", ti.task_id, exc)


# What every creditplus DAG shares: its owner, retries with exponential backoff, a time limit, and the
# failure record.
DAG_DEFAULT_ARGS = {
    "owner": "credit-data",
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=10),
    "execution_timeout": dt.timedelta(hours=1),
    "on_failure_callback": record_task_failure,
}
DBT_GROUP_ID = "dbt"
PRODUCER_TASK = "dbt_producer_watcher"  # Cosmos's watcher: the task that runs the one dbt build
# The run's evaluation date as a template, for operators that take templated fields (dbt's env).
EVALUATION_DATE_TEMPLATE = "{{ evaluation_date(logical_date, params) }}"


# ---------------------------------------------------------------- the evaluation date
def evaluation_date(logical_date: dt.datetime | None, params: dict | None = None) -> dt.date:
    """The day a run grades: the ``evaluation_date`` param when given, else the day before
    the run's logical date in +08:00 (the 01:30 run of D+1 grades D).

    Under ``CronTriggerTimetable`` a run's data interval is empty (start = end = logical
    date), so the date is derived here, in one place, for every task.
    """
    explicit = (params or {}).get("evaluation_date")
    if explicit:
        return dt.date.fromisoformat(explicit)
    if logical_date is None:
        raise ValueError("a run without a logical date needs the evaluation_date param (YYYY-MM-DD)")
    return logical_date.astimezone(config.CST).date() - dt.timedelta(days=1)


def nightly_schedule():
    """credit_nightly's timetable: every day at ``SCHEDULE_TIME`` (Asia/Shanghai), or none (only triggered
    runs) when CREDITPLUS_NIGHTLY_SCHEDULE is off."""
    from airflow.timetables.trigger import CronTriggerTimetable

    if not config.nightly_scheduled():
        return None
    return CronTriggerTimetable(f"{SCHEDULE_TIME.minute} {SCHEDULE_TIME.hour} * * *", timezone="Asia/Shanghai")


def logical_date_for(evaluation_date: dt.date) -> dt.datetime:
    """The scheduled logical date whose run grades ``evaluation_date`` (D+1 01:30 +08:00)."""
    return dt.datetime.combine(evaluation_date + dt.timedelta(days=1), SCHEDULE_TIME, config.CST)


# ---------------------------------------------------------------- alerts (parse time: settings only)
def dag_alerts(dag_name: str) -> dict:
    """The DAG arguments that tell operators (``CREDITPLUS_ALERT_EMAIL`` through ``CREDITPLUS_SMTP_URL``):
    a mail when a run fails, and a deadline alert when a run has not finished ``publish_deadline()`` after
    it was queued (the 01:30 run: by 07:00). Nothing when no address is configured."""
    to = config.alert_email()
    if not to:
        return {}
    from airflow.providers.smtp.notifications.smtp import SmtpNotifier
    from airflow.sdk import AsyncCallback, DeadlineAlert, DeadlineReference

    mail = {"to": to, "smtp_conn_id": airflow_env.SMTP_CONN_ID}
    failed = SmtpNotifier(**mail, subject=f"[creditplus] {dag_name} FAILED: {{{{ dag_run.run_id }}}}",
                          html_content=f"<p>{dag_name} run {{{{ dag_run.run_id }}}} failed ({{{{ reason }}}}); the "
                                       "channels keep the previous publication. See OPERATIONS.md, &ldquo;A night "
                                       "failed&rdquo;.</p>")
    late = AsyncCallback(SmtpNotifier, kwargs={
        **mail, "subject": f"[creditplus] {dag_name} has not published by its deadline",
        "html_content": f"<p>{dag_name} has not finished {publish_deadline()} after it was queued "
                        "(the 01:30 night: 07:00 Asia/Shanghai); the channels still show the previous "
                        "publication. See OPERATIONS.md, &ldquo;Deadline missed&rdquo;.</p>"})
    return {"on_failure_callback": [failed],
            "deadline": DeadlineAlert(reference=DeadlineReference.DAGRUN_QUEUED_AT,
                                      interval=publish_deadline(), callback=late)}


def publish_deadline() -> dt.timedelta:
    """How long after it is queued a night may run: from the schedule time to CREDITPLUS_PUBLISH_DEADLINE."""
    day = dt.date(2026, 1, 1)
    interval = dt.datetime.combine(day, config.publish_deadline_time()) - dt.datetime.combine(day, SCHEDULE_TIME)
    if interval <= dt.timedelta(0):
        raise ValueError(f"CREDITPLUS_PUBLISH_DEADLINE must be after the schedule time {SCHEDULE_TIME:%H:%M}")
    return interval


# ---------------------------------------------------------------- connections (run time)
def _connection(conn_id: str):
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def warehouse_url() -> str:
    return airflow_env.warehouse_url(_connection(airflow_env.WAREHOUSE_CONN_ID))


# ---------------------------------------------------------------- task callables
def last_errors(conn, dag_id: str, run_id: str) -> dict[tuple[str, int], str]:
    """(task_id, map_index) → the last line (at most 400 characters) of the latest failure ``record_failure``
    kept for each task of the run; empty where ``audit.task_failures`` does not exist yet."""
    if not conn.execute("select to_regclass('audit.task_failures')").fetchone()[0]:
        return {}
    found = {}
    for task_id, map_index, error in conn.execute(
            "select distinct on (task_id, map_index) task_id, map_index, error from audit.task_failures"
            " where dag_id = %s and run_id = %s order by task_id, map_index, try_number desc", (dag_id, run_id)):
        lines = [line for line in error.splitlines() if line.strip()]
        found[(task_id, map_index)] = (lines[-1] if lines else error)[:400]
    return found


def setup_warehouse(logical_date: dt.datetime | None, params: dict | None) -> None:
    """Refuse an evaluation date nothing can grade; create or upgrade the warehouse schemas (idempotent)."""
    from creditplus import warehouse

    from airflow.sdk.exceptions import AirflowFailException

    base_url, token = airflow_env.platform(_connection(airflow_env.PLATFORM_CONN_ID))
    try:
        check_evaluation_date(evaluation_date(logical_date, params), base_url, token)
    except EvaluationDateError as exc:
        raise AirflowFailException(str(exc)) from None  # not transient: no retry
    with warehouse.connect(warehouse_url()) as conn:
        if through_groups := warehouse.setup(conn):
            log.warning(warehouse.regrant_notice(through_groups))


class EvaluationDateError(ValueError):
    """The date cannot be graded (after today, or before the platform's first record)."""


def check_evaluation_date(day: dt.date, platform_url: str, token: str) -> None:
    """Raise ``EvaluationDateError`` (one line) for a day after today (+08:00) or before the platform's first
    record; every other day the archive can answer."""
    if reason := config.not_yet(day):
        raise EvaluationDateError(reason)
    first = platform_first_record(platform_url, token)
    if first is not None and day < first:
        raise EvaluationDateError(f"cannot grade {day}: it is before the platform's first record ({first})")


def platform_first_record(platform_url: str, token: str) -> dt.date | None:
    """The day (+08:00) of the platform's oldest record version: each resource's first item (items come
    ordered by ``updated_at``); None when the platform holds nothing."""
    import httpx

    from creditplus.validation import parse_timestamp

    first: list[dt.datetime] = []
    with httpx.Client(base_url=platform_url.rstrip("/"), headers={"Authorization": f"Bearer {token}"},
                      timeout=30) as client:
        for name in RESOURCE_NAMES:
            response = client.get(f"/api/v1/resources/{name}", params={"page_size": 1})
            response.raise_for_status()
            items = response.json().get("items") or []
            when = parse_timestamp(items[0].get("updated_at")) if items and isinstance(items[0], dict) else None
            if when is not None:
                first.append(when)
    return min(first).astimezone(config.CST).date() if first else None


def extract(resource: str, logical_date: dt.datetime | None, params: dict | None) -> dict:
    """Extract one resource for the run's evaluation date; returns the load statistics."""
    from creditplus.extract import extract_resource

    base_url, token = airflow_env.platform(_connection(airflow_env.PLATFORM_CONN_ID))
    return extract_resource(resource, evaluation_date(logical_date, params),
                            warehouse_url=warehouse_url(), platform_url=base_url, token=token)


def quality_gate(gate: str, logical_date: dt.datetime | None, params: dict | None, run_id: str, ti=None) -> dict:
    """Run the ``feed`` or ``marts`` quality gate; a critical failure raises ``QualityGateError``
    (the task fails and nothing is published). Before the marts gate, dbt's data tests run again when the
    night's one ``dbt build`` did not complete (``dbt_build_completed``): the node tasks that stood in for it
    ran their nodes without tests."""
    from creditplus import dbt_runner, quality

    day = evaluation_date(logical_date, params)
    reran = gate == "marts" and ti is not None and not dbt_build_completed(ti)
    if reran:
        log.warning("the night's dbt build did not complete (its nodes were run one by one): dbt's data tests again")
        dbt_runner.data_test(day, warehouse_url=warehouse_url())
    check = {"feed": quality.check_feed, "marts": quality.check_marts}[gate]
    result = check(day, warehouse_url=warehouse_url(), run_id=run_id)
    return {"gate": gate, "expectations": len(result.outcomes), "dbt_tests_rerun": reran,
            "warnings": [w.describe() for w in result.warnings], "data_docs": str(result.data_docs)}


def dbt_build_completed(ti) -> bool:
    """Whether the run's one ``dbt build`` (with its tests) completed: the in-process task's success, or the
    watcher producer's ``task_status`` XCom (Cosmos pushes "completed" at the end of its build)."""
    if os.environ.get("CREDITPLUS_IN_PROCESS"):
        return True  # dbt_build is upstream of the gate: it succeeded
    return ti.xcom_pull(task_ids=f"{DBT_GROUP_ID}.{PRODUCER_TASK}", key="task_status") == "completed"


def publish(logical_date: dt.datetime | None, params: dict | None, run_id: str, outlet_events=None) -> int:
    """Make the validated evaluation current for every channel in one transaction; the publication asset's
    event says which evaluation it is."""
    from airflow.sdk import Asset

    from creditplus import publish as publication

    day = evaluation_date(logical_date, params)
    publication_id = publication.publish(day, warehouse_url=warehouse_url(), run_id=run_id)
    if outlet_events is not None:
        outlet_events[Asset(PUBLICATION_ASSET)].extra = publication_event(publication_id)
    return publication_id


def publication_event(publication_id: int) -> dict:
    """The publication asset event's extra: what an agency's DAG needs to read the new publication."""
    from creditplus import warehouse

    with warehouse.connect(warehouse_url()) as conn:
        day, version = conn.execute("select evaluation_date, model_version from audit.publications"
                                    " where publication_id = %s", (publication_id,)).fetchone()
    return {"evaluation_date": day.isoformat(), "model_version": version, "publication_id": publication_id}


def report(logical_date: dt.datetime | None, params: dict | None, run_id: str | None = None, ti=None) -> dict:
    """Write the night's HTML report (``creditplus.report``; its path is logged and returned as ``report``), then
    log and return the run's summary (see ``summary``). The DAG's teardown: it runs after a failed night too, and
    its page says what failed and that the channels keep the previous publication."""
    from creditplus import report as night_report, warehouse

    day = evaluation_date(logical_date, params)
    night = night_run(run_id, ti)
    with warehouse.connect(warehouse_url()) as conn:
        if not conn.execute("select to_regclass('audit.publications') is not null").fetchone()[0]:
            log.warning("credit_nightly %s: the warehouse has no schemas (the night failed at setup): no report", day)
            return {"evaluation_date": day.isoformat(), "report": None}
        result = summary(conn, day)
        path = night_report.write(conn, day, night)
    result["report"] = str(path)
    log.info("credit_nightly %s: report written to %s", day, path)
    log.info("credit_nightly %s: %s", day, result)
    for warning in result["quality_warnings"]:
        log.warning("credit_nightly %s: data-quality warning %s", day, warning)
    if result["overdue_objections"]:
        log.warning("credit_nightly %s: %d objections open past their deadline (第十四条): %s", day,
                    len(result["overdue_objections"]), ", ".join(result["overdue_objections"]))
    if unconfirmed := result["unconfirmed_deadlines"]:
        log.warning("credit_nightly %s: %d open objections have a provisional deadline (calendar year not "
                    "confirmed): %s", day, len(unconfirmed), ", ".join(unconfirmed))
    return result


def night_run(run_id: str | None, ti=None):
    """The run as Airflow records it for the report: every ended task instance with its duration, from the Task
    SDK's breadcrumbs of the run (the same request under ``dag.test()`` and a Celery worker); without a task
    instance (called outside a run) None."""
    from creditplus.report import Night

    if ti is None or run_id is None or not hasattr(ti, "get_task_breadcrumbs"):
        return None
    try:
        return Night.from_breadcrumbs(run_id, ti.get_task_breadcrumbs(ti.dag_id, run_id))
    except Exception as exc:  # noqa: BLE001 - the page without timings beats no page
        log.info("the run's task durations could not be read (%s); the report has no timings", exc)
        return Night(run_id)


def summary(conn, day: dt.date) -> dict:
    """What a night did: latest load attempt per resource, grade counts when the mart exists, the failed
    warnings of the date's latest run of each quality suite, the Data Docs index when rendered, and, when
    ``day`` is the current publication (else None), the ids of the open objections past their due_on and
    of those whose due_on is not confirmed by the work calendar."""
    from creditplus import quality

    loads = conn.execute(
        "select resource, status, fetched, archived, duplicates, quarantined"
        " from audit.latest_load_runs where evaluation_date = %s order by resource",
        (day,),
    ).fetchall()
    warnings = conn.execute(  # of each suite's latest run for the date
        "select suite, expectation, observed from audit.quality_results r"
        " where evaluation_date = %s and severity = 'warning' and not success"
        "   and run_id = (select run_id from audit.quality_results l where l.evaluation_date = r.evaluation_date"
        "                  and l.suite = r.suite order by checked_at desc limit 1)"
        " order by suite, expectation", (day,)).fetchall()
    docs = quality.data_docs_dir() / "index.html"
    result: dict = {
        "evaluation_date": day.isoformat(),
        "loads": {r[0]: {"status": r[1], "fetched": r[2], "archived": r[3], "duplicates": r[4],
                         "quarantined": r[5]} for r in loads},
        "grades": None,
        "quality_warnings": [f"{suite}.{expectation} observed {observed}" for suite, expectation, observed in warnings],
        "data_docs": str(docs) if docs.exists() else None,
        "overdue_objections": None,
        "unconfirmed_deadlines": None,
    }
    if conn.execute("select to_regclass('marts.fct_enterprise_evaluation')").fetchone()[0]:
        rows = conn.execute(
            "select grade, count(*) from marts.fct_enterprise_evaluation"
            " where evaluation_date = %s group by grade order by grade", (day,)
        ).fetchall()
        result["grades"] = {grade: count for grade, count in rows}
    if conn.execute("select 1 from audit.publications where is_current and evaluation_date = %s", (day,)).fetchone():
        open_objections = conn.execute(
            "select objection_id, overdue, deadline_confirmed from publication.objection_sla"
            " where status in ('submitted', 'processing') order by objection_id").fetchall()
        result["overdue_objections"] = [oid for oid, overdue, _ in open_objections if overdue]
        result["unconfirmed_deadlines"] = [oid for oid, _, confirmed in open_objections if not confirmed]
    return result


# ---------------------------------------------------------------- dbt through Cosmos
def manifest_path():
    return config.DBT_PROJECT_DIR / "target" / "manifest.json"


def dbt_env_templates() -> dict[str, str]:
    """``CREDITPLUS_PG*`` for dbt's profiles.yml, rendered from the warehouse connection at run time."""
    conn = f"conn.{airflow_env.WAREHOUSE_CONN_ID}"
    return {
        "CREDITPLUS_PGHOST": f"{{{{ {conn}.host }}}}",
        "CREDITPLUS_PGPORT": f"{{{{ {conn}.port or 5432 }}}}",
        "CREDITPLUS_PGUSER": f"{{{{ {conn}.login or 'postgres' }}}}",
        "CREDITPLUS_PGPASSWORD": f"{{{{ {conn}.password or '' }}}}",
        "CREDITPLUS_PGDATABASE": f"{{{{ {conn}.schema }}}}",
        "CREDITPLUS_EVALUATION_DATE": EVALUATION_DATE_TEMPLATE,  # not a var: dbt's partial parse stays valid
        "DO_NOT_TRACK": "1",
    }


def dbt_stage():
    """The night's dbt stage, made inside the DAG (the DAG file only wires it).

    Under the scheduler (the production path): Cosmos's watcher mode (``dbt_task_group_args``), a task per
    seed and model. ``dag.test()`` cannot run the watcher (a deferred sensor waits inline for a producer that
    never runs; in reschedule mode the producer's node states never reach the sensors), so an in-process
    night (``CREDITPLUS_IN_PROCESS``, set by ``airflow_env.local_env``) runs the same ``dbt build`` as one task
    (``build_night``): one-off nights and quick tests need no per-node tasks, and it costs a tenth of them.
    The scheduled-night test checks that both publish the same evaluation."""
    if os.environ.get("CREDITPLUS_IN_PROCESS"):
        from airflow.sdk import task

        return task(task_id="dbt_build")(build_night)()
    from cosmos import DbtTaskGroup

    return DbtTaskGroup(group_id=DBT_GROUP_ID, **dbt_task_group_args())


def build_night(logical_date: dt.datetime | None = None, params: dict | None = None) -> None:
    """``dbt build`` of every seed, model and test (unit tests too, as the watcher's build runs them) for the
    run's evaluation date; a failure names every failing node (``dbt_runner.DbtError``)."""
    from creditplus import dbt_runner

    dbt_runner.build(evaluation_date(logical_date, params), warehouse_url=warehouse_url(), unit_tests=True)


def dbt_task_group_args() -> dict:
    """Keyword arguments of the scheduler's Cosmos ``DbtTaskGroup``, rendered from the manifest (no dbt call,
    no network at parse time): Cosmos's watcher mode runs the night's dbt in one ``dbt build`` (a producer
    task, with every data and unit test), and each seed and model has a task: a sensor that defers to the
    triggerer and succeeds or fails with its node. When the build is lost (its worker died), these tasks fall
    back to running their own node (``dbt run``/``seed`` of it); the marts gate then runs dbt's data tests.
    On two cores it cost about 2.5x less than a ``dbt build`` per node task (figures: README).
    No asset events per model: nothing downstream consumes them.
    """
    from cosmos import ExecutionConfig, ProfileConfig, ProjectConfig, RenderConfig
    from cosmos.constants import ExecutionMode, InvocationMode, LoadMode, TestBehavior

    return {
        "project_config": ProjectConfig(
            dbt_project_path=config.DBT_PROJECT_DIR,
            manifest_path=manifest_path(),
            install_dbt_deps=False,
        ),
        "profile_config": ProfileConfig(
            profile_name="creditplus",
            target_name="warehouse",
            profiles_yml_filepath=config.DBT_PROJECT_DIR / "profiles.yml",
        ),
        "execution_config": ExecutionConfig(
            execution_mode=ExecutionMode.WATCHER,
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=airflow_env.venv_bin("dbt"),
        ),
        "render_config": RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.NONE,  # the tests run in the build; per-test tasks cost a third more
            should_detach_multiple_parents_tests=True,  # a test of several nodes runs after all of them
            emit_datasets=False,
        ),
        "operator_args": {"env": dbt_env_templates(), "poke_interval": 1},
    }
