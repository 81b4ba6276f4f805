"""``creditplus nightly --date D``: the credit_nightly DAG, run by Airflow, for evaluation date D.

Airflow runs from a local home (``config.home()/airflow``, SQLite metadata) with the
warehouse and the platform delivered as connections; ``airflow dags test`` runs every
task in order for the logical date that grades D. A rerun of the same date replaces the
previous test run (Airflow deletes it); extraction itself is incremental and idempotent.
"""
from __future__ import annotations

import datetime as dt
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import httpx

from creditplus import airflow_env, config, orchestration, warehouse
from creditplus.errors import UserError

DAG_ID = "credit_nightly"
DBT_SOURCES = ("dbt_project.yml", "profiles.yml", "models", "seeds", "macros", "tests", "snapshots")


def main(args) -> int:
    """``creditplus nightly --date D`` with the warehouse and platform from the settings."""
    return run(args.date, warehouse_url=warehouse.url(), platform_url=config.platform_url(),
               token=config.platform_token() or "")


def run(day: dt.date, *, warehouse_url: str, platform_url: str, token: str) -> int:
    """Run the DAG for evaluation date ``day``; print a summary; 0 when every task succeeded."""
    check_platform(platform_url, token)
    ensure_manifest()
    env = airflow_env.local_env(airflow_env.connection_env(warehouse_url, platform_url, token))
    airflow_env.migrate(env)
    logical_date = orchestration.logical_date_for(day)
    log_file = airflow_env.airflow_home() / "logs" / "nightly" / f"{day}_{time.strftime('%Y%m%dT%H%M%S')}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(f"credit_nightly: grading {day} (logical date {logical_date.isoformat()}); Airflow output in {log_file}",
          flush=True)
    started = time.monotonic()
    with log_file.open("w") as out:
        subprocess.run([airflow_env.venv_bin("airflow"), "dags", "test", DAG_ID, logical_date.isoformat()],
                       env=env, stdout=out, stderr=subprocess.STDOUT, cwd=config.PROJECT_ROOT)
    elapsed = time.monotonic() - started
    failed = failed_tasks(Path(env["AIRFLOW_HOME"]) / "airflow.db", logical_date, log_file)
    if failed is None:
        failed = [f"no run was recorded: {last_exception(log_file) or 'the DAG did not run'}"]
    if failed:
        print(f"credit_nightly {day}: FAILED after {elapsed:.0f} s", flush=True)
        for line in failed:
            print(f"  {line}")
        print(f"  details: {log_file}")
        return 1
    with warehouse.connect(warehouse_url) as conn:
        print(format_summary(orchestration.summary(conn, day), elapsed, warehouse_url, log_file))
    return 0


def check_platform(platform_url: str, token: str) -> None:
    """Fail fast, in one line, when the platform is unreachable or refuses the token."""
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


def failed_tasks(metadata_db: Path, logical_date: dt.datetime, output: Path) -> list[str] | None:
    """Unsuccessful tasks of the test run for ``logical_date`` as ``task: state: error`` lines;
    ``None`` when no run was recorded (the DAG did not parse)."""
    with sqlite3.connect(metadata_db) as db:
        run = db.execute(
            "select run_id, state from dag_run where dag_id = ? and logical_date = ?",
            (DAG_ID, logical_date.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f")),
        ).fetchone()
        if run is None:
            return None
        rows = db.execute(
            "select task_id, map_index, rendered_map_index, state from task_instance"
            " where dag_id = ? and run_id = ? and state not in ('success', 'skipped')"
            " order by task_id, map_index", (DAG_ID, run[0]),
        ).fetchall()
    errors = task_errors(output)
    lines = []
    for task_id, map_index, label, state in rows:
        name = task_id if map_index < 0 else f"{task_id}[{label or map_index}]"
        error = errors.get((task_id, map_index))
        lines.append(f"{name}: {state}" + (f": {error}" if error else ""))
    if run[1] != "success" and not lines:
        lines.append(f"the run ended {run[1]}")
    return lines


_STARTING = re.compile(r"\[DAG TEST\] starting task_id=(\S+) map_index=(-?\d+)")
_LOG_LINE = re.compile(r"^\d{4}-\d\d-\d\dT")
# The line a traceback ends with: a qualified exception name, or a builtin one, then its message.
_EXCEPTION = re.compile(r"^(?:(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*|\w*(?:Error|Exception|Exit|Interrupt))(?::\s|$)")


def task_errors(output: Path) -> dict[tuple[str, int], str]:
    """The exception each task last failed with, read from ``airflow dags test`` output
    (tasks run in-process one at a time; a failure logs a traceback under the task)."""
    errors: dict[tuple[str, int], str] = {}
    current: tuple[str, int] | None = None
    in_failure = False
    for line in output.read_text(errors="replace").splitlines():
        if started := _STARTING.search(line):
            current, in_failure = (started[1], int(started[2])), False
        elif _LOG_LINE.match(line):
            in_failure = "Task failed with exception" in line
        elif in_failure and current and _EXCEPTION.match(line):
            errors[current] = line.strip()[:400]  # in a chain the raised (outermost) exception comes last
    return errors


def last_exception(output: Path) -> str | None:
    """The last exception line anywhere in the output (e.g. why the DAG did not parse)."""
    lines = [line.strip() for line in output.read_text(errors="replace").splitlines() if _EXCEPTION.match(line)]
    return lines[-1][:400] if lines else None


def format_summary(summary: dict, elapsed: float, warehouse_url: str, log_file: Path) -> str:
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
    if summary["data_docs"]:
        lines.append(f"  Data Docs: {summary['data_docs']}")
    lines += [f"  warehouse: {warehouse._redact(warehouse_url)}  (psql \"{warehouse._redact(warehouse_url)}\")",
              "    select * from marts.fct_enterprise_evaluation; select * from audit.load_runs; "
              "select * from audit.quarantine;",
              f"  Airflow logs: {airflow_env.airflow_home() / 'logs'}  (this run: {log_file})"]
    return "\n".join(lines)
