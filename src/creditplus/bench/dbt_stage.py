"""``creditplus bench dbt --enterprises N``: the dbt stage of a night under the scheduler against one
``dbt build`` of the same nodes on the same warehouse.

One run: a generated city (cached) is served, a scratch warehouse made, and Airflow's services started
(``creditplus airflow up``, Celery on Redis) from a home of their own under ``config.home()/bench/``:

* night 1 under the scheduler grades the city's last day (extract, gates, the dbt task group, publish);
* one ``dbt build`` of the same nodes for the same day (``dbt_runner.build``, unit tests included as the
  producer runs them), in the state a rerun finds (staging already holds the day);
* night 2 under the scheduler reruns the day: its dbt stage does what the single build did.

The dbt stage is the span from the first dbt task's start to the last one's end, read from Airflow's
task instances (REST). Printed: both figures, their ratio against the 1.3x target, and the night's stages.
What runs is shown as it runs (``bench.progress``; a night: its tasks done of all).
"""
from __future__ import annotations

import datetime as dt
import os
import time

from creditplus import config
from creditplus.bench.progress import Stages

TARGET_RATIO = 1.3
REDIS_DB = 12  # the bench's own broker database: a running deployment's workers never take its tasks


def stage_seconds(tasks, prefix: str) -> float:
    chosen = [t for t in tasks if t.task_id.startswith(prefix) and t.start and t.end]
    return (max(t.end for t in chosen) - min(t.start for t in chosen)).total_seconds() if chosen else 0.0


def night(api, day: dt.date, count) -> dict:
    """Night ``day`` under the scheduler; ``count(done, total)`` follows its task instances."""
    from creditplus import nightly, orchestration
    from creditplus.airflow_api import TASK_DONE
    from creditplus.errors import UserError

    started = time.monotonic()
    run_id = api.trigger(nightly.DAG_ID, orchestration.logical_date_for(day))
    outcome = api.wait(nightly.DAG_ID, run_id, timeout=nightly.SCHEDULED_NIGHT_TIMEOUT_S,
                       on_progress=lambda tasks: count(sum(t.state in TASK_DONE for t in tasks), len(tasks)))
    if outcome.state != "success":
        raise UserError(f"the benchmark night {day} failed: {'; '.join(nightly.failure_lines(outcome, config.configured_warehouse_url()))}")
    tasks = outcome.tasks
    return {"wall": time.monotonic() - started, "tasks": len(tasks),
            "dbt_tasks": sum(t.task_id.startswith("dbt.") for t in tasks),
            "stages": {name: stage_seconds(tasks, prefix) for name, prefix in
                       (("extract", "extract"), ("feed gate", "check_feed"), ("dbt", "dbt."),
                        ("marts gate", "check_marts"), ("publish", "publish"))}}


def main(args) -> int:
    from creditplus import airflow_services, dbt_runner, warehouse
    from creditplus.airflow_api import AirflowApi
    from creditplus.bench.extract import END_DATE, TOKEN, cached_dataset, scratch_database, serving

    enterprises = args.enterprises
    with Stages("bench dbt", 7) as stage:
        dataset = cached_dataset(enterprises, stage)
        home = config.home() / "bench" / f"airflow-{enterprises}"
        stage("a scratch warehouse, and the simulator serving the city")
        with scratch_database() as url, serving(dataset) as platform_url:
            os.environ.update({
                "CREDITPLUS_HOME": str(home), "CREDITPLUS_WAREHOUSE_URL": url,
                "CREDITPLUS_PLATFORM_URL": platform_url, "CREDITPLUS_PLATFORM_TOKEN": TOKEN,
                "CREDITPLUS_REDIS_URL": f"{config.DEFAULT_REDIS_URL[:-2]}/{REDIS_DB}",
                "CREDITPLUS_AIRFLOW_PORT": str(warehouse.free_port()),
                "CREDITPLUS_NIGHTLY_SCHEDULE": "off",  # the bench's own nights only
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(warehouse.free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(warehouse.free_port())})
            stage("starting Airflow's services (`creditplus airflow up`)")
            started = time.monotonic()
            try:
                info = airflow_services.up(quiet=True)
                startup = time.monotonic() - started
                api = AirflowApi(info["api_url"], info["password_file"])
                stage("waiting for the DAG to be parsed")
                api.wait_for_dag("credit_nightly")
                stage(f"night 1 ({END_DATE}) under the scheduler")
                first = night(api, END_DATE, stage.count("tasks"))
                stage("one `dbt build` of the same nodes")
                build_started = time.monotonic()
                dbt_runner.build(END_DATE, warehouse_url=url, unit_tests=True)
                single = time.monotonic() - build_started
                stage(f"night 2 ({END_DATE}, the rerun) under the scheduler")
                rerun = night(api, END_DATE, stage.count("tasks"))
            finally:
                stage("stopping Airflow's services")
                airflow_services.down(quiet=True)
            with warehouse.connect(url) as conn:
                graded = conn.execute("select count(*) from marts.fct_enterprise_evaluation").fetchone()[0]
    ratio = rerun["stages"]["dbt"] / single
    print(f"bench dbt: {enterprises} enterprises ({graded} graded), {info['executor']}, services up in "
          f"{startup:.0f} s; {rerun['dbt_tasks']} dbt tasks (Cosmos watcher: one producer, a sensor per node)")
    print(f"  one `dbt build` of the same nodes          {single:8.1f} s")
    print(f"  dbt stage under the scheduler (rerun)      {rerun['stages']['dbt']:8.1f} s   ratio {ratio:.2f}x "
          f"({'within' if ratio <= TARGET_RATIO else 'ABOVE'} the {TARGET_RATIO}x target)")
    for label, result in (("night 1 (first load)", first), ("night 2 (rerun)", rerun)):
        stages = "  ".join(f"{name} {seconds:.1f}" for name, seconds in result["stages"].items())
        print(f"  {label:<22} wall {result['wall']:7.1f} s   {stages}   ({result['tasks']} tasks)")
    return 0
