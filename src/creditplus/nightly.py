"""``creditplus nightly --date D [--scheduler]``: the credit_nightly DAG, run by Airflow, for evaluation date D.

In-process (the default, for a one-off night): Airflow runs from a local home (``config.home()/airflow``,
SQLite metadata) with the warehouse and the platform delivered as connections, and ``dag.test()`` runs
every task in order for the logical date that grades D (``creditplus.in_process``, in a child process).
With ``--scheduler`` the services ``creditplus airflow up`` started do the night: the run is triggered
through Airflow's REST API and followed until it ends. Either way the outcome is Airflow's own answer
(the DagRun, or the REST API's JSON); why a task failed comes from ``audit.task_failures`` (its failure
callback) and, for a quality gate, the failed checks in ``audit.quality_results``. A rerun of the same
date replaces the previous run (the in-process run is cleared; the scheduler's ended run is deleted and a
fresh one triggered); extraction itself is incremental and idempotent.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from creditplus import airflow_env, config, orchestration, warehouse
from creditplus.airflow_api import RunOutcome, TaskState
from creditplus.errors import UserError

DAG_ID = "credit_nightly"
DBT_SOURCES = ("dbt_project.yml", "profiles.yml", "models", "seeds", "macros", "tests", "snapshots")
SCHEDULED_NIGHT_TIMEOUT_S = 4 * 3600
PROGRESS_POLL_S = 1.0  # how often the in-process run's task states are read
QUALITY_GATES = {"check_feed": "feed", "check_marts": ("staging", "marts")}


def _settings() -> dict[str, str]:
    return {"warehouse_url": warehouse.url(), "platform_url": config.platform_url(),
            "token": config.platform_token() or ""}


def main(args) -> int:
    """``creditplus nightly --date D [--scheduler]`` with the warehouse and platform from the settings."""
    return (run_scheduled if args.scheduler else run)(args.date, **_settings())


def run(day: dt.date, *, warehouse_url: str, platform_url: str, token: str) -> int:
    """Run the DAG in-process for evaluation date ``day``; print a summary; 0 when every task succeeded."""
    check_inputs(day, warehouse_url, platform_url, token)
    ensure_manifest()
    env = airflow_env.local_env(airflow_env.connection_env(warehouse_url, platform_url, token))
    airflow_env.migrate(env)
    logical_date = orchestration.logical_date_for(day)
    log_file = airflow_env.airflow_home() / "logs" / "nightly" / f"{day}_{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    result_file = log_file.with_suffix(".json")
    print(f"{DAG_ID}: grading {day} (logical date {logical_date.isoformat()}) in-process; Airflow output in "
          f"{log_file}", flush=True)
    started, since = time.monotonic(), time.time()
    metadata = Path(env["AIRFLOW_HOME"]) / "airflow.db"
    with log_file.open("w") as out, _progress(f"{DAG_ID} {day}", idle="starting Airflow") as progress:
        child = subprocess.Popen([sys.executable, "-m", "creditplus.in_process", DAG_ID, logical_date.isoformat(),
                                  str(result_file)], env=env, stdout=out, stderr=subprocess.STDOUT,
                                 cwd=config.PROJECT_ROOT)
        try:
            while child.poll() is None:
                try:
                    child.wait(timeout=PROGRESS_POLL_S)
                except subprocess.TimeoutExpired:
                    pass
                if tasks := local_task_states(metadata, DAG_ID, logical_date, since):
                    progress(tasks)
        except BaseException:  # Ctrl-C: the run ends with the command
            child.kill()
            child.wait()
            raise
    outcome = _read_outcome(result_file, log_file)
    return report(day, outcome, time.monotonic() - started, warehouse_url, log_file, since)


def local_task_states(metadata: Path, dag_id: str, logical_date: dt.datetime, since: float) -> list[TaskState]:
    """The task instances of the in-process run for ``logical_date`` as Airflow records them in its SQLite metadata
    database (read-only; ``dag.test()`` writes it in WAL mode, so reading never blocks it), once the run made after
    ``since`` (epoch seconds) exists: a rerun's old run, deleted by ``dag.test()``, is not shown. Empty while there
    is nothing to show or the database cannot be read."""
    import contextlib
    import sqlite3

    utc = "%Y-%m-%d %H:%M:%S.%f"  # how Airflow's UtcDateTime is stored in SQLite
    at = logical_date.astimezone(dt.timezone.utc).strftime(utc)
    after = dt.datetime.fromtimestamp(since, dt.timezone.utc).strftime(utc)
    try:
        with contextlib.closing(sqlite3.connect(f"file:{metadata}?mode=ro", uri=True, timeout=1)) as conn:
            rows = conn.execute(
                "select ti.task_id, ti.map_index, ti.rendered_map_index, ti.state, ti.try_number"
                "  from task_instance ti join dag_run dr on dr.dag_id = ti.dag_id and dr.run_id = ti.run_id"
                " where dr.dag_id = ? and dr.logical_date = ? and dr.created_at >= ?", (dag_id, at, after)).fetchall()
    except sqlite3.Error:
        return []
    return [TaskState(task_id, map_index, label, state, try_number or 0, None, None)
            for task_id, map_index, label, state, try_number in rows]


def _scheduler(warehouse_url: str):
    """The REST API of the services running from this home, once they grade into ``warehouse_url`` and
    the DAG is stored."""
    from creditplus import airflow_services
    from creditplus.airflow_api import AirflowApi

    api = AirflowApi.for_running_services()
    serving = airflow_services.state().get("warehouse")
    if serving and serving != warehouse.redact(warehouse_url):
        raise UserError(f"the running Airflow services grade into {serving}, not {warehouse.redact(warehouse_url)}; "
                        "set CREDITPLUS_WAREHOUSE_URL to theirs, or restart them (`creditplus airflow down`, `up`)")
    api.wait_for_dag(DAG_ID)
    return api


def run_scheduled(day: dt.date, *, warehouse_url: str, platform_url: str, token: str) -> int:
    """Have the running services' scheduler do the night (triggered through the REST API); same summary."""
    check_inputs(day, warehouse_url, platform_url, token)
    api = _scheduler(warehouse_url)
    logical_date = orchestration.logical_date_for(day)
    started, since = time.monotonic(), time.time()
    run_id = api.trigger(DAG_ID, logical_date)
    print(f"{DAG_ID}: grading {day} under the scheduler (run {run_id}, logical date {logical_date.isoformat()})",
          flush=True)
    with _progress(f"{DAG_ID} {day}") as progress:
        outcome = api.wait(DAG_ID, run_id, timeout=SCHEDULED_NIGHT_TIMEOUT_S, on_progress=progress)
    where = f"{api.base_url}/dags/{DAG_ID}/runs/{run_id}"
    return report(day, outcome, time.monotonic() - started, warehouse_url, where, since)


def backfill_main(args) -> int:
    """``creditplus backfill --from D1 --to D2``: the running scheduler grades every day D1..D2, oldest first;
    one line per night; 0 when every night succeeded.

    Each night is a run triggered through the REST API for its logical date (an ended one is replaced), so the DAG's ``max_active_runs=1`` keeps them, and the scheduled night, one at a time.
    Airflow's own backfills are not used: the scheduler runs them beside scheduled runs (its limit on active
    runs leaves backfill runs out), and two nights must never build the shared marts at once."""
    first, last = args.from_date, args.to_date
    if last < first:
        raise UserError(f"--to {last} is before --from {first}")
    settings = _settings()
    for day in (first, last):
        check_inputs(day, settings["warehouse_url"], settings["platform_url"], settings["token"])
    api = _scheduler(settings["warehouse_url"])
    days = [first + dt.timedelta(days=n) for n in range((last - first).days + 1)]
    started = time.monotonic()
    run_ids = {day: api.trigger(DAG_ID, orchestration.logical_date_for(day)) for day in days}
    print(f"{DAG_ID}: {len(days)} night{'s' if len(days) > 1 else ''} {first}..{last} queued under the scheduler",
          flush=True)
    outcomes = {}
    with _progress(f"backfill {first}..{last}") as progress:
        for day in days:
            outcomes[day] = api.wait(DAG_ID, run_ids[day], timeout=SCHEDULED_NIGHT_TIMEOUT_S, on_progress=progress)
    for day, outcome in outcomes.items():
        print(f"  {day}: {'success' if outcome.state == 'success' else 'FAILED'} (run {outcome.run_id})")
        if outcome.state != "success":
            print("\n".join(f"    {line}" for line in failure_lines(outcome, settings["warehouse_url"])))
    failed = sum(o.state != "success" for o in outcomes.values())
    print(f"{DAG_ID}: {len(days) - failed} of {len(days)} nights {first}..{last} succeeded in "
          f"{time.monotonic() - started:.0f} s")
    return 1 if failed else 0


def check_inputs(day: dt.date, warehouse_url: str, platform_url: str, token: str) -> None:
    """The warehouse and the platform answer, the platform accepts the token, and ``day`` can be graded;
    else one line (exit 2) before any task runs."""
    warehouse.check(warehouse_url)
    check_platform(platform_url, token)
    try:
        orchestration.check_evaluation_date(day, platform_url, token)
    except orchestration.EvaluationDateError as exc:
        raise UserError(str(exc)) from None


def _read_outcome(result_file: Path, log_file: Path) -> RunOutcome:
    import json

    try:
        text = result_file.read_text()
    except OSError:
        raise UserError(f"the in-process Airflow run ended without an outcome; see {log_file}") from None
    if "error" in (data := json.loads(text)):
        raise UserError(f"{data['error']}; see {log_file}")
    return RunOutcome.from_json(text)


@contextlib.contextmanager
def _progress(label: str, idle: str = "waiting for the scheduler") -> Iterator[Callable[[list[TaskState]], None]]:
    """A progress bar over the run's task instances (finished / all, as Airflow reports them), naming what runs
    now (``creditplus.progress``)."""
    from creditplus import progress
    from creditplus.airflow_api import TASK_DONE

    with progress.bar(f"{label}: {idle}") as update:
        def show(tasks: list[TaskState]) -> None:
            running = sorted({t.name for t in tasks if t.state == "running"})
            update(sum(t.state in TASK_DONE for t in tasks), len(tasks), f"{label}: {', '.join(running[:3]) or idle}")
        yield show


def report(day: dt.date, outcome: RunOutcome, elapsed: float, warehouse_url: str, where, since: float) -> int:
    """Print the night's summary (0) or its failure: each failed task and why, and one line for the tasks
    not run because of it (1); either way where the night's HTML report is (the ``report`` task wrote it)."""
    written = report_written(day, since, outcome)
    if outcome.state == "success":
        with warehouse.connect(warehouse_url) as conn:
            print(format_summary(orchestration.summary(conn, day), elapsed, warehouse_url, where, written))
        return 0
    print(f"{DAG_ID} {day}: FAILED after {elapsed:.0f} s", flush=True)
    for line in failure_lines(outcome, warehouse_url):
        print(f"  {line}")
    print(f"  details: {where}")
    print(f"  report: {written}")
    return 1


def report_written(day: dt.date, since: float, outcome: RunOutcome) -> str:
    """The path of the report this run's ``report`` task wrote (the file, changed since ``since``), else why
    there is none."""
    from creditplus import report as night_report

    path = night_report.path_for(day)
    try:
        if path.stat().st_mtime >= since - 1:
            return str(path)
    except OSError:
        pass
    state = next((t.state for t in outcome.tasks if t.task_id == "report"), None)
    return f"not written (the report task {'did not run' if state is None else f'ended {state}'}; see its log)"


def failure_lines(outcome: RunOutcome, warehouse_url: str) -> list[str]:
    """``task: why`` for every failed task; then how many downstream tasks did not run."""
    failed = [t for t in outcome.tasks if t.state == "failed"]
    not_run = [t for t in outcome.tasks if t.state not in ("success", "failed", "skipped")]
    reasons = _failure_reasons(outcome, failed, warehouse_url)
    lines = [f"{t.name}: {reasons.get((t.task_id, t.map_index)) or 'failed (no error recorded; see its log)'}"
             for t in failed]
    if not failed:
        lines.append(f"the run ended {outcome.state} with no failed task")
    if not_run:
        lines.append(f"{len(not_run)} downstream task{'s' if len(not_run) != 1 else ''} not run")
    return lines


def _failure_reasons(outcome: RunOutcome, failed: list[TaskState], warehouse_url: str) -> dict[tuple[str, int], str]:
    """The last line of each failed task's error, and a quality gate's failed checks."""
    reasons: dict[tuple[str, int], str] = {}
    try:
        with warehouse.connect(warehouse_url) as conn:
            reasons.update(orchestration.last_errors(conn, outcome.dag_id, outcome.run_id))
            gates = [t for t in failed if t.task_id in QUALITY_GATES]
            if gates and conn.execute("select to_regclass('audit.quality_results')").fetchone()[0]:
                checks = conn.execute(
                    "select suite, expectation, observed from audit.quality_results"
                    " where run_id = %s and severity = 'critical' and not success order by suite, expectation",
                    (outcome.run_id,)).fetchall()
                for gate in gates:
                    suites = QUALITY_GATES[gate.task_id]
                    found = [f"{suite}.{name} observed {observed}" for suite, name, observed in checks if suite in suites]
                    if found:
                        reasons[(gate.task_id, gate.map_index)] = "failed check " + "; ".join(found)
    except Exception as exc:  # noqa: BLE001 - the warehouse may be what failed the night: say so, report the rest
        reasons.setdefault(("setup", -1), f"(the warehouse could not be read: {str(exc).splitlines()[0]})")
    return reasons


def check_platform(platform_url: str, token: str) -> None:
    """Fail fast, in one line, when the platform is unreachable or refuses the token."""
    if not token:
        raise UserError("CREDITPLUS_PLATFORM_TOKEN is not set: set it to the credit platform's bearer token")
    try:
        response = httpx.get(f"{platform_url.rstrip('/')}/api/v1/resources",
                             headers={"Authorization": f"Bearer {token}"}, timeout=10)
    except httpx.HTTPError as exc:
        raise UserError(f"the credit platform at {platform_url} is unreachable ({exc}); "
                        "start it (`creditplus platform serve --data DIR`) or set CREDITPLUS_PLATFORM_URL") from None
    if response.status_code == 401:
        raise UserError(f"the credit platform at {platform_url} refused the token; set CREDITPLUS_PLATFORM_TOKEN")
    if response.status_code != 200:
        raise UserError(f"the credit platform at {platform_url} answered {response.status_code} to /api/v1/resources")


def ensure_manifest() -> Path:
    """dbt's manifest (Cosmos renders the DAG from it), re-parsed when a dbt source is newer."""
    from creditplus import dbt_runner

    manifest = orchestration.manifest_path()
    sources = [p for name in DBT_SOURCES for p in _files(config.DBT_PROJECT_DIR / name)]
    if not manifest.exists() or any(p.stat().st_mtime > manifest.stat().st_mtime for p in sources):
        try:
            dbt_runner.parse()
        except dbt_runner.DbtError as exc:
            raise UserError(f"cannot parse the dbt project in {config.DBT_PROJECT_DIR}: {exc}") from None
    return manifest


def _files(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()] if path.is_dir() else [path] if path.exists() else []


def format_summary(summary: dict, elapsed: float, warehouse_url: str, where, report_path: str | None = None) -> str:
    """The lines printed after a successful run."""
    loads = summary["loads"]
    lines = [f"credit_nightly {summary['evaluation_date']}: success in {elapsed:.0f} s",
             f"  archived {sum(l['archived'] for l in loads.values())} record versions, "
             f"quarantined {sum(l['quarantined'] for l in loads.values())} "
             f"({sum(l['duplicates'] for l in loads.values())} duplicates skipped)"]
    lines += [f"    {name:<22} archived {l['archived']:>7}  quarantined {l['quarantined']:>5}"
              for name, l in loads.items()]
    grades = summary["grades"]
    if grades:
        lines.append(f"  graded {sum(grades.values())} enterprises: "
                     + ", ".join(f"{g} {n}" for g, n in grades.items()))
    if quality := summary["quality_warnings"]:
        lines.append(f"  quality warnings: {len(quality)} (published nonetheless)")
        lines += [f"    {warning}" for warning in quality]
    if overdue := summary["overdue_objections"]:
        lines.append(f"  WARNING: {len(overdue)} objections open past their deadline (第十四条): {', '.join(overdue)}")
    if unconfirmed := summary["unconfirmed_deadlines"]:
        lines.append(f"  WARNING: {len(unconfirmed)} open objections have a provisional deadline (calendar year not "
                     f"confirmed): {', '.join(unconfirmed)}")
    if report_path:
        lines.append(f"  report: {report_path}")
    if summary["data_docs"]:
        lines.append(f"  Data Docs: {summary['data_docs']}")
    lines += [f"  warehouse: {warehouse.redact(warehouse_url)}  (psql \"{warehouse.redact(warehouse_url)}\")",
              "    select * from marts.fct_enterprise_evaluation; select * from audit.load_runs; "
              "select * from audit.quarantine;",
              f"  Airflow: {where}"]
    return "\n".join(lines)
