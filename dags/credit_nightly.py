"""
### credit_nightly

Grades every enterprise as of the **previous day** (+08:00): the 01:30 run of D+1 grades D
(or the `evaluation_date` param, `YYYY-MM-DD`, when given).

`setup` (refuses a date after today or before the platform's first record; warehouse schemas) →
`extract` (one mapped task per platform resource, in the platform pool, into the raw archive and
quarantine) → `check_feed` (Great Expectations on the feed) → `dbt` (Cosmos's watcher: one `dbt build`,
a task per seed and model; in-process: one `dbt_build` task) →
`check_marts` (Great Expectations on staging and marts) → `publish` (one transaction switches
every channel to this evaluation; emits the publication asset) → `report` (the night's HTML report under
`<home>/reports/D.html`, its path logged; a teardown: it also runs, and says so, after a failed night).
A critical quality failure fails the run before `publish`: the channels keep the previous publication.
A failed run, or one not finished by the publish deadline (07:00), mails `CREDITPLUS_ALERT_EMAIL`.

Connections: `creditplus_warehouse` (postgres) and `creditplus_platform` (http; host =
base URL, password = bearer token). Logic lives in `creditplus.orchestration`.
"""
from __future__ import annotations

from airflow.sdk import Asset, Param, dag, task, teardown
from creditplus import deployment, orchestration


@dag(
    dag_id="credit_nightly",
    doc_md=__doc__,
    schedule=orchestration.nightly_schedule(),
    catchup=False,  # no start_date: the first scheduled night is the next 01:30; any past day is a backfill
    max_active_runs=1,
    tags=["creditplus", "nightly", "dbt"],
    default_args=orchestration.DAG_DEFAULT_ARGS,
    params={"evaluation_date": Param(None, type=["null", "string"], format="date",
                                     description="grade this day instead of the day before the logical date")},
    user_defined_macros={"evaluation_date": orchestration.evaluation_date},
    **orchestration.dag_alerts("credit_nightly"),
)
def credit_nightly():
    @task
    def setup(logical_date=None, params=None) -> None:
        orchestration.setup_warehouse(logical_date, params)

    @task(map_index_template="{{ task.op_kwargs['resource'] }}", pool=deployment.PLATFORM_POOL)
    def extract(resource: str, logical_date=None, params=None) -> dict:
        return orchestration.extract(resource, logical_date, params)

    @task(retries=0)  # a failed gate is a verdict, not a glitch
    def check_feed(logical_date=None, params=None, run_id=None) -> dict:
        return orchestration.quality_gate("feed", logical_date, params, run_id)

    @task(retries=0)
    def check_marts(logical_date=None, params=None, run_id=None, ti=None) -> dict:
        return orchestration.quality_gate("marts", logical_date, params, run_id, ti)

    @task(outlets=[Asset(orchestration.PUBLICATION_ASSET)])
    def publish(logical_date=None, params=None, run_id=None, outlet_events=None) -> int:
        return orchestration.publish(logical_date, params, run_id, outlet_events)

    @teardown  # runs after a failed night too (its page says so); the run's state stays its tasks' own
    def report(logical_date=None, params=None, run_id=None, ti=None) -> dict:
        return orchestration.report(logical_date, params, run_id, ti)

    dbt = orchestration.dbt_stage()
    extracted = setup() >> extract.expand(resource=orchestration.RESOURCE_NAMES)
    extracted >> check_feed() >> dbt >> check_marts() >> publish() >> report()


credit_nightly()
