"""
### credit_nightly

Grades every enterprise as of the **previous day** (+08:00): the 01:30 run of D+1 grades D
(or the `evaluation_date` param, `YYYY-MM-DD`, when given).

`setup` (warehouse schemas) → `extract` (one mapped task per platform resource, into the
raw archive and quarantine) → `check_feed` (Great Expectations on the feed) → `dbt` (one
Cosmos task per seed and model, each running `dbt build` on its node with its tests) →
`check_marts` (Great Expectations on staging and marts) → `publish` (one transaction switches
every channel to this evaluation) → `report` (load and grade counts).
A critical quality failure fails the run before `publish`: the channels keep the previous publication.

Connections: `creditplus_warehouse` (postgres) and `creditplus_platform` (http; host =
base URL, password = bearer token). Logic lives in `creditplus.orchestration`.
"""
from __future__ import annotations

import pendulum
from airflow.sdk import Param, dag, task
from airflow.timetables.trigger import CronTriggerTimetable
from cosmos import DbtTaskGroup

from creditplus import orchestration


@dag(
    dag_id="credit_nightly",
    doc_md=__doc__,
    schedule=CronTriggerTimetable("30 1 * * *", timezone="Asia/Shanghai"),
    start_date=pendulum.datetime(2026, 11, 1, tz="Asia/Shanghai"),
    catchup=False,
    max_active_runs=1,
    tags=["creditplus", "nightly", "dbt"],
    default_args=orchestration.DAG_DEFAULT_ARGS,
    params={"evaluation_date": Param(None, type=["null", "string"], format="date",
                                     description="grade this day instead of the day before the logical date")},
    user_defined_macros={"evaluation_date": orchestration.evaluation_date},
)
def credit_nightly():
    @task
    def setup() -> None:
        orchestration.setup_warehouse()

    @task(map_index_template="{{ task.op_kwargs['resource'] }}")
    def extract(resource: str, logical_date=None, params=None) -> dict:
        return orchestration.extract(resource, logical_date, params)

    @task(retries=0)  # a failed gate is a verdict, not a glitch
    def check_feed(logical_date=None, params=None, run_id=None) -> dict:
        return orchestration.quality_gate("feed", logical_date, params, run_id)

    @task(retries=0)
    def check_marts(logical_date=None, params=None, run_id=None) -> dict:
        return orchestration.quality_gate("marts", logical_date, params, run_id)

    @task
    def publish(logical_date=None, params=None, run_id=None) -> int:
        return orchestration.publish(logical_date, params, run_id)

    @task
    def report(logical_date=None, params=None) -> dict:
        return orchestration.report(logical_date, params)

    dbt = DbtTaskGroup(group_id=orchestration.DBT_GROUP_ID, **orchestration.dbt_task_group_args())
    extracted = setup() >> extract.expand(resource=orchestration.RESOURCE_NAMES)
    extracted >> check_feed() >> dbt >> check_marts() >> publish() >> report()


credit_nightly()
