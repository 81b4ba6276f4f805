"""
### credit_reevaluation

Re-evaluates some enterprises between nights (第十四条–第十六条) when an upheld objection, an approved
credit repair or a confirmed self-report reaches the warehouse: triggered with the `usccs` param, or by
an update of the rights-decisions asset whose event extra carries `usccs`.

`validate` (every code well-formed and known; the current publication's evaluation date) → `rescore`
(dbt build of what publication reads, for that date, into the schemas `*_reevaluation`, apart from the
nightly's) → `gate` (the marts quality gate) → `republish`
(one transaction: a new current publication with just these enterprises' rows replaced, notices to
regulators and supply-chain warnings). A bad code fails `validate` and nothing else runs.

Connection: `creditplus_warehouse`. Logic lives in `creditplus.reevaluation`.
"""
from __future__ import annotations

import datetime as dt

from airflow.sdk import Asset, Param, dag, task

from creditplus import orchestration, reevaluation


@dag(
    dag_id="credit_reevaluation",
    doc_md=__doc__,
    schedule=[Asset(reevaluation.RIGHTS_DECISIONS_ASSET)],
    catchup=False,
    max_active_runs=1,
    tags=["creditplus", "reevaluation", "dbt"],
    default_args=orchestration.DAG_DEFAULT_ARGS,
    params={"usccs": Param([], type="array", items={"type": "string"},
                           description="credit codes (uscc) of the enterprises to re-evaluate")},
    **orchestration.dag_alerts("credit_reevaluation"),
)
def credit_reevaluation():
    @task(retries=0)  # a bad code is not transient
    def validate(params=None, triggering_asset_events=None) -> dict:
        day, usccs = reevaluation.validate(reevaluation.requested_usccs(params, triggering_asset_events),
                                           warehouse_url=orchestration.warehouse_url())
        return {"evaluation_date": day.isoformat(), "usccs": usccs}

    @task
    def rescore(target: dict) -> None:
        reevaluation.build_marts(dt.date.fromisoformat(target["evaluation_date"]),
                                 warehouse_url=orchestration.warehouse_url())

    @task(retries=0)  # a failed gate is a verdict, not a glitch
    def gate(target: dict, run_id=None) -> None:
        from creditplus import quality

        quality.check_marts(target["evaluation_date"], warehouse_url=orchestration.warehouse_url(), run_id=run_id,
                            schema_suffix=reevaluation.SCHEMA_SUFFIX)

    @task
    def republish(target: dict, run_id=None) -> int:
        from creditplus import publish

        return publish.republish(target["usccs"], warehouse_url=orchestration.warehouse_url(), run_id=run_id,
                                 schema_suffix=reevaluation.SCHEMA_SUFFIX)

    target = validate()
    rescore(target) >> gate(target) >> republish(target)


credit_reevaluation()
