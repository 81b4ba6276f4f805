"""One DAG run in this process with ``dag.test()`` (Airflow's own in-process runner), its outcome written
as JSON from the DagRun it returns: ``python -m creditplus.in_process DAG_ID LOGICAL_DATE RESULT_FILE``.

``creditplus nightly`` (without ``--scheduler``) runs this in a child process with its Airflow home in the
environment (Airflow reads its settings once, at import) and reads the result file: Airflow's answer, not
its log. A DAG that does not parse leaves ``{"error": ...}`` instead.
"""
from __future__ import annotations

import datetime as dt
import json
import sys
from pathlib import Path


def run(dag_id: str, logical_date: dt.datetime, result_file: Path) -> int:
    from airflow.dag_processing.dagbag import DagBag
    from airflow.utils.session import create_session

    from creditplus import config
    from creditplus.airflow_api import RunOutcome, TaskState

    bag = DagBag(dag_folder=str(config.DAGS_DIR))
    dag = bag.dags.get(dag_id)
    if dag is None:
        errors = "; ".join(f"{Path(f).name}: {e.strip().splitlines()[-1]}" for f, e in bag.import_errors.items())
        result_file.write_text(json.dumps({"error": f"Airflow could not load the DAG {dag_id}"
                                                    + (f" ({errors})" if errors else "")}))
        return 1
    dag_run = dag.test(logical_date=logical_date)
    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        tasks = [TaskState(ti.task_id, ti.map_index, ti.rendered_map_index, ti.state and str(ti.state),
                           ti.try_number, ti.start_date, ti.end_date) for ti in tis]
    outcome = RunOutcome(dag_id, dag_run.run_id, str(dag_run.state), sorted(tasks, key=lambda t: (t.task_id, t.map_index)))
    result_file.write_text(outcome.to_json())
    return 0


if __name__ == "__main__":
    sys.exit(run(sys.argv[1], dt.datetime.fromisoformat(sys.argv[2]), Path(sys.argv[3])))
