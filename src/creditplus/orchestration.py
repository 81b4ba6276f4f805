"""What the ``credit_nightly`` DAG runs, and its dbt/Cosmos configuration, defined once.

The DAG file only wires these together. Nothing here touches a database or an Airflow
connection until a task calls it; connections are read at run time.
"""
from __future__ import annotations

import datetime as dt
import logging

from creditplus import airflow_env, config
from creditplus.resources import RESOURCES

log = logging.getLogger(__name__)

RESOURCE_NAMES: list[str] = [r.name for r in RESOURCES]
# What every creditplus DAG shares: its owner and retries with exponential backoff.
DAG_DEFAULT_ARGS = {
    "owner": "credit-data",
    "retries": 2,
    "retry_delay": dt.timedelta(seconds=30),
    "retry_exponential_backoff": 2.0,
    "max_retry_delay": dt.timedelta(minutes=10),
}
DBT_GROUP_ID = "dbt"
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


def logical_date_for(evaluation_date: dt.date) -> dt.datetime:
    """The scheduled logical date whose run grades ``evaluation_date`` (D+1 01:30 +08:00)."""
    return dt.datetime.combine(evaluation_date + dt.timedelta(days=1), dt.time(1, 30), config.CST)


# ---------------------------------------------------------------- connections (run time)
def _connection(conn_id: str):
    from airflow.sdk import BaseHook

    return BaseHook.get_connection(conn_id)


def warehouse_url() -> str:
    return airflow_env.warehouse_url(_connection(airflow_env.WAREHOUSE_CONN_ID))


# ---------------------------------------------------------------- task callables
def setup_warehouse() -> None:
    """Create or upgrade the warehouse schemas (idempotent)."""
    from creditplus import warehouse

    with warehouse.connect(warehouse_url()) as conn:
        warehouse.setup(conn)


def extract(resource: str, logical_date: dt.datetime | None, params: dict | None) -> dict:
    """Extract one resource for the run's evaluation date; returns the load statistics."""
    from creditplus.extract import extract_resource

    base_url, token = airflow_env.platform(_connection(airflow_env.PLATFORM_CONN_ID))
    return extract_resource(resource, evaluation_date(logical_date, params),
                            warehouse_url=warehouse_url(), platform_url=base_url, token=token)


def quality_gate(gate: str, logical_date: dt.datetime | None, params: dict | None, run_id: str) -> dict:
    """Run the ``feed`` or ``marts`` quality gate; a critical failure raises ``QualityGateError``
    (the task fails and nothing is published)."""
    from creditplus import quality

    check = {"feed": quality.check_feed, "marts": quality.check_marts}[gate]
    result = check(evaluation_date(logical_date, params), warehouse_url=warehouse_url(), run_id=run_id)
    return {"gate": gate, "expectations": len(result.outcomes),
            "warnings": [w.describe() for w in result.warnings], "data_docs": str(result.data_docs)}


def publish(logical_date: dt.datetime | None, params: dict | None, run_id: str) -> int:
    """Make the validated evaluation current for every channel in one transaction."""
    from creditplus import publish as publication

    return publication.publish(evaluation_date(logical_date, params), warehouse_url=warehouse_url(),
                               run_id=run_id)


def report(logical_date: dt.datetime | None, params: dict | None) -> dict:
    """Log and return the run's summary (see ``summary``)."""
    from creditplus import warehouse

    day = evaluation_date(logical_date, params)
    with warehouse.connect(warehouse_url()) as conn:
        result = summary(conn, day)
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


def dbt_task_group_args() -> dict:
    """Keyword arguments of the DAG's Cosmos ``DbtTaskGroup``.

    Rendered from the manifest (no dbt call, no network at parse time); one task per
    seed/model running ``dbt build`` on that node (its data and unit tests included),
    so each is visible and retried on its own, plus one task per test of several nodes;
    dbt runs in-process (dbtRunner). No asset events: nothing downstream consumes them.
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
            execution_mode=ExecutionMode.LOCAL,
            invocation_mode=InvocationMode.DBT_RUNNER,
            dbt_executable_path=airflow_env.venv_bin("dbt"),
        ),
        "render_config": RenderConfig(
            load_method=LoadMode.DBT_MANIFEST,
            test_behavior=TestBehavior.BUILD,
            should_detach_multiple_parents_tests=True,  # a test of several nodes runs after all of them
            emit_datasets=False,
        ),
        "operator_args": {"env": dbt_env_templates()},
    }
