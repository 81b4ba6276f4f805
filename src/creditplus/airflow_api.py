"""Airflow's REST API (v2) as the running services answer it: what ``creditplus nightly --scheduler``,
``creditplus backfill``, operators' scripts and the tests use to have the scheduler do a night, and to
read its outcome in Airflow's own JSON.

Auth is the API server's own: ``POST /auth/token`` with the admin user's login (the password file
``creditplus airflow up`` made) gives a bearer token.
"""
from __future__ import annotations

import datetime as dt
import json
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from creditplus import deployment
from creditplus.errors import UserError

FINISHED = {"success", "failed"}
TASK_DONE = {"success", "failed", "skipped", "upstream_failed", "removed"}


@dataclass(frozen=True)
class TaskState:
    task_id: str
    map_index: int
    label: str | None   # the rendered map index (e.g. the resource an extract task pulls)
    state: str | None
    try_number: int
    start: dt.datetime | None
    end: dt.datetime | None

    @property
    def name(self) -> str:
        return self.task_id if self.map_index < 0 else f"{self.task_id}[{self.label or self.map_index}]"


@dataclass(frozen=True)
class RunOutcome:
    """One DAG run as Airflow reports it (REST JSON, or the DagRun ``dag.test()`` returns)."""

    dag_id: str
    run_id: str
    state: str
    tasks: list[TaskState]

    def to_json(self) -> str:
        def plain(t: TaskState) -> dict:
            return {**t.__dict__, "start": t.start and t.start.isoformat(), "end": t.end and t.end.isoformat()}
        return json.dumps({"dag_id": self.dag_id, "run_id": self.run_id, "state": self.state,
                           "tasks": [plain(t) for t in self.tasks]})

    @classmethod
    def from_json(cls, text: str) -> "RunOutcome":
        data = json.loads(text)
        tasks = [TaskState(**{**t, "start": _time(t["start"]), "end": _time(t["end"])}) for t in data["tasks"]]
        return cls(data["dag_id"], data["run_id"], data["state"], tasks)


def _time(value: str | None) -> dt.datetime | None:
    return dt.datetime.fromisoformat(value) if value else None


class AirflowApi:
    def __init__(self, base_url: str, password_file: str | Path, user: str = deployment.ADMIN_USER):
        self.base_url = base_url.rstrip("/")
        try:
            password = json.loads(Path(password_file).read_text())[user]
        except (OSError, ValueError, KeyError):
            raise UserError(f"no password for Airflow's user {user} in {password_file}; "
                            "run `creditplus airflow up` (or `creditplus airflow init`)") from None
        try:
            response = httpx.post(f"{self.base_url}/auth/token", json={"username": user, "password": password},
                                  timeout=30)
        except httpx.HTTPError as exc:
            raise UserError(f"Airflow's API at {self.base_url} does not answer ({exc}); "
                            "start it with `creditplus airflow up`") from None
        if response.status_code not in (200, 201):
            raise UserError(f"Airflow's API at {self.base_url} refused the login of {user} "
                            f"({response.status_code}); check {password_file}")
        self.client = httpx.Client(base_url=f"{self.base_url}/api/v2", timeout=60,
                                   headers={"Authorization": f"Bearer {response.json()['access_token']}"})

    @classmethod
    def for_running_services(cls) -> "AirflowApi":
        """The API of the services ``creditplus airflow up`` started from this home."""
        from creditplus import airflow_services

        info = airflow_services.state()
        if not info or not airflow_services.api_health(info["api_url"]):
            raise UserError("Airflow's services are not running from this home; start them with "
                            "`creditplus airflow up`")
        return cls(info["api_url"], info["password_file"])

    def request(self, method: str, path: str, ok: tuple[int, ...] = (200,), **kwargs) -> httpx.Response:
        """One REST call (path under /api/v2); an unexpected status is one line naming it."""
        response = self.client.request(method, path, **kwargs)
        if response.status_code not in ok:
            detail = response.text[:300].replace("\n", " ")
            raise UserError(f"Airflow's API answered {response.status_code} to {method} {path}: {detail}")
        return response

    # ---------------------------------------------------------------- DAGs and runs
    def wait_for_dag(self, dag_id: str, timeout: float = 120) -> dict:
        """The DAG once the DAG processor has stored it (new DAG files take a parse loop), unpaused."""
        deadline = time.monotonic() + timeout
        while True:
            response = self.client.get(f"/dags/{dag_id}")
            if response.status_code == 200:
                dag = response.json()
                if dag.get("is_paused"):
                    dag = self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False}).json()
                return dag
            if time.monotonic() > deadline:
                raise UserError(f"Airflow has no DAG {dag_id} after {timeout:.0f} s; see the dag-processor's log")
            time.sleep(1)

    def trigger(self, dag_id: str, logical_date: dt.datetime | None, conf: dict | None = None,
                run_id: str | None = None) -> str:
        """Start a run for ``logical_date``; one that ended for that date (scheduled, or an earlier trigger)
        is deleted and replaced by a fresh run. Not cleared: a cleared run is a second try of every task,
        and Cosmos's watcher producer skips a second try (it never runs a second ``dbt build``), so every
        node would then run on its own, 2-3x slower. Returns the run id."""
        body = {"logical_date": logical_date.isoformat() if logical_date else None, "conf": conf or {}}
        if run_id:
            body["dag_run_id"] = run_id
        response = self.request("POST", f"/dags/{dag_id}/dagRuns", ok=(200, 409), json=body)
        if response.status_code == 200:
            return response.json()["dag_run_id"]
        existing = self.run_for(dag_id, logical_date)
        if existing is None:
            raise UserError(f"Airflow refused a run of {dag_id} for {logical_date}: {response.text[:300]}")
        if self.run_state(dag_id, existing) in ("queued", "running"):
            raise UserError(f"{dag_id} is already running for {logical_date.isoformat()} (run {existing}): "
                            "wait for it to end, then run it again")
        self.request("DELETE", f"/dags/{dag_id}/dagRuns/{existing}", ok=(204,))
        return self.request("POST", f"/dags/{dag_id}/dagRuns", json=body).json()["dag_run_id"]

    def run_for(self, dag_id: str, logical_date: dt.datetime) -> str | None:
        at = logical_date.isoformat()
        runs = self.request("GET", f"/dags/{dag_id}/dagRuns",
                          params={"logical_date_gte": at, "logical_date_lte": at}).json()["dag_runs"]
        return runs[0]["dag_run_id"] if runs else None

    def runs(self, dag_id: str, **params) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns",
                          params={"limit": 100, "order_by": "logical_date", **params}).json()["dag_runs"]

    def run_state(self, dag_id: str, run_id: str) -> str:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}").json()["state"]

    def task_states(self, dag_id: str, run_id: str) -> list[TaskState]:
        found, offset = [], 0
        while True:
            page = self.request("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances",
                              params={"limit": 100, "offset": offset}).json()
            found += [TaskState(t["task_id"], t["map_index"], t.get("rendered_map_index"), t["state"],
                                t["try_number"], _time(t.get("start_date")), _time(t.get("end_date")))
                      for t in page["task_instances"]]
            offset += len(page["task_instances"])
            if not page["task_instances"] or offset >= page["total_entries"]:
                return found

    def wait(self, dag_id: str, run_id: str, *, timeout: float, on_progress=None, poll: float = 2.0) -> RunOutcome:
        """Poll the run until it finishes; ``on_progress(tasks)`` after each poll."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.run_state(dag_id, run_id)
            tasks = self.task_states(dag_id, run_id)
            if on_progress:
                on_progress(tasks)
            if state in FINISHED:
                return RunOutcome(dag_id, run_id, state, tasks)
            if time.monotonic() > deadline:
                raise UserError(f"{dag_id} run {run_id} has not finished after {timeout:.0f} s (state {state}); "
                                "it goes on under the scheduler")
            time.sleep(poll)

    # ---------------------------------------------------------------- assets
    def asset_id(self, uri: str) -> int:
        assets = self.request("GET", "/assets", params={"uri_pattern": uri}).json()["assets"]
        matches = [a["id"] for a in assets if a["uri"] == uri]
        if not matches:
            raise UserError(f"Airflow knows no asset {uri}; is the DAG that uses it parsed?")
        return matches[0]

    def post_asset_event(self, uri: str, extra: dict) -> dict:
        """Record an update of the asset ``uri`` (as an external system would); DAGs scheduled on it run."""
        return self.request("POST", "/assets/events", json={"asset_id": self.asset_id(uri), "extra": extra}).json()
