"""Airflow as production runs it, defined once: its services, their settings, the one-off
initialisation and the pool the extract tasks share.

Two things start these services: ``creditplus airflow up`` natively on one machine
(``creditplus.airflow_services``) and ``docker-compose.yml``, which is generated from this
module (``python -m creditplus.deployment > docker-compose.yml``; tests/test_compose.py
fails when the committed file differs). Both call ``airflow_settings`` with the addresses
of their own network, so the services, their commands, health checks and settings cannot
drift apart.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import sys
from dataclasses import dataclass

from creditplus import airflow_env, config

AIRFLOW_VERSION = "3.3.2"
ADMIN_USER = "admin"
PLATFORM_POOL = "creditplus_platform"  # the extract tasks' pool: the platform's concurrent requests
# A task whose worker vanished is failed (and retried) after this long without a heartbeat.
TASK_HEARTBEAT_TIMEOUT = dt.timedelta(minutes=2)
WORKER_CONCURRENCY = 4  # two cores: dbt and PostgreSQL do the work, the slots mostly wait on them
PARALLELISM = 8
CELERY_APP = "airflow.providers.celery.executors.celery_executor.app"


@dataclass(frozen=True)
class Service:
    """One long-running Airflow component."""

    name: str                       # compose service ``airflow-<name>``; native pid and log files
    args: tuple[str, ...]           # ``airflow ARGS``
    healthcheck: tuple[str, ...]    # a command that succeeds while the component is healthy
    celery_only: bool = False       # runs only with the CeleryExecutor


def _job_check(job_type: str) -> tuple[str, ...]:
    return ("airflow", "jobs", "check", "--job-type", job_type, "--local")


SERVICES: tuple[Service, ...] = (
    Service("apiserver", ("api-server",),
            ("python", "-c", "import os, urllib.request; urllib.request.urlopen("
             "os.environ['AIRFLOW__API__BASE_URL'] + '/api/v2/monitor/health', timeout=10)")),
    Service("scheduler", ("scheduler",), _job_check("SchedulerJob")),
    Service("dag-processor", ("dag-processor",), _job_check("DagProcessorJob")),
    Service("triggerer", ("triggerer",), _job_check("TriggererJob")),
    Service("worker", ("celery", "worker"),
            ("celery", "--app", CELERY_APP, "inspect", "ping", "--timeout", "10"), celery_only=True),
)


@dataclass(frozen=True)
class Endpoints:
    """Where one deployment's parts are, as its own network sees them."""

    executor: str             # CeleryExecutor or LocalExecutor
    airflow_home: str
    creditplus_home: str
    dags_folder: str
    metadata_url: str         # SQLAlchemy URL of Airflow's metadata database
    broker_url: str           # Redis; unused by the LocalExecutor
    api_host: str
    api_port: int
    api_base_url: str         # how the services reach the API server (execution API included)
    worker_log_port: int
    triggerer_log_port: int
    fernet_key: str
    jwt_secret: str
    warehouse_url: str
    platform_url: str
    platform_token: str
    alert_email: str
    smtp_url: str
    platform_pool_slots: str


def airflow_settings(e: Endpoints) -> dict[str, str]:
    """The environment every service of a deployment runs with (and ``creditplus airflow init``)."""
    result_backend = "db+" + e.metadata_url.replace("postgresql+psycopg2://", "postgresql://", 1)
    return {
        "AIRFLOW_HOME": e.airflow_home,
        "AIRFLOW__CORE__EXECUTOR": e.executor,
        "AIRFLOW__CORE__DAGS_FOLDER": e.dags_folder,
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",  # the nightly schedule is the point
        "AIRFLOW__CORE__PARALLELISM": str(PARALLELISM),
        "AIRFLOW__CORE__FERNET_KEY": e.fernet_key,
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{e.api_base_url}/execution/",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": f"{e.creditplus_home}/airflow/admin-password.json",
        "AIRFLOW__API__HOST": e.api_host,
        "AIRFLOW__API__PORT": str(e.api_port),
        "AIRFLOW__API__BASE_URL": e.api_base_url,
        "AIRFLOW__API_AUTH__JWT_SECRET": e.jwt_secret,
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": e.metadata_url,
        "AIRFLOW__CELERY__BROKER_URL": e.broker_url,
        "AIRFLOW__CELERY__RESULT_BACKEND": result_backend,
        "AIRFLOW__CELERY__WORKER_CONCURRENCY": str(WORKER_CONCURRENCY),
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(int(TASK_HEARTBEAT_TIMEOUT.total_seconds())),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(e.worker_log_port),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(e.triggerer_log_port),
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": f"{e.airflow_home}/cosmos",
        "DO_NOT_TRACK": "1",
        "CREDITPLUS_HOME": e.creditplus_home,
        "CREDITPLUS_WAREHOUSE_URL": e.warehouse_url,
        "CREDITPLUS_PLATFORM_URL": e.platform_url,
        "CREDITPLUS_PLATFORM_TOKEN": e.platform_token,
        "CREDITPLUS_ALERT_EMAIL": e.alert_email,
        "CREDITPLUS_SMTP_URL": e.smtp_url,
        "CREDITPLUS_PLATFORM_POOL_SLOTS": e.platform_pool_slots,
        **airflow_env.connection_env(e.warehouse_url, e.platform_url, e.platform_token, e.smtp_url),
    }


def services(executor: str) -> tuple[Service, ...]:
    return tuple(s for s in SERVICES if executor == "CeleryExecutor" or not s.celery_only)


def init() -> None:
    """What a deployment does once before its services start, and again on every upgrade (idempotent):
    migrate the metadata database, size the platform pool, and give the admin user a random password in
    the file the API server reads, readable only by its owner. ``creditplus airflow init`` (compose's airflow-init) and ``airflow up`` run it."""
    import secrets
    import subprocess
    from pathlib import Path

    from creditplus.errors import UserError

    for args in (["db", "migrate"],
                 ["pools", "set", PLATFORM_POOL, str(config.platform_pool_slots()),
                  "concurrent requests to the credit platform (extract tasks)"]):
        proc = subprocess.run([airflow_env.venv_bin("airflow"), *args], capture_output=True, text=True)
        if proc.returncode != 0:
            last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
            raise UserError(f"airflow {' '.join(args[:2])} failed: {last[:300]}")
    passwords = Path(os.environ["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"])
    if not passwords.exists():
        passwords.parent.mkdir(parents=True, exist_ok=True)
        airflow_env.create_private(passwords, json.dumps({ADMIN_USER: secrets.token_urlsafe(18)}))


def init_command(args) -> int:
    """``creditplus airflow init``."""
    init()
    print(f"airflow: metadata database migrated, pool {PLATFORM_POOL} set to {config.platform_pool_slots()} slots, "
          f"admin password in {os.environ['AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE']}")
    return 0


# ---------------------------------------------------------------- docker-compose.yml
IMAGE = "creditplus:0.1.0"
COMPOSE_HOME = "/opt/airflow/creditplus"  # the creditplus-home volume: Data Docs, reports, admin password
COMPOSE_HEADER = """\
# Production-shaped deployment of creditplus: the PostgreSQL warehouse, Airflow 3 with the
# CeleryExecutor (Redis broker, its own PostgreSQL metadata database) and the credit
# platform simulator standing in for the real platform.
#
# GENERATED by `python -m creditplus.deployment > docker-compose.yml` from
# src/creditplus/deployment.py, the same definition `creditplus airflow up` starts natively:
# edit that module, not this file (tests/test_compose.py fails when they differ).
#
#   cp .env.example .env && $EDITOR .env   # secrets and settings, read by compose, never committed
#   docker compose up -d                   # UI/API on http://localhost:8080; credit_nightly runs at 01:30 +08:00
#   docker compose exec airflow-apiserver cat /opt/airflow/creditplus/airflow/admin-password.json
#                                          # the admin login: user admin, that password (made by airflow-init)
#
# The real platform: set CREDITPLUS_PLATFORM_URL (and its token) in .env and leave out the simulator
# services (`docker compose up -d --scale simulator=0 --scale simulator-data=0`).
"""
# Variables compose reads from .env (documented, with how to make each, in .env.example).
COMPOSE_SECRETS = ("AIRFLOW_FERNET_KEY", "AIRFLOW_JWT_SECRET", "AIRFLOW_DB_PASSWORD", "WAREHOUSE_PASSWORD",
                   "CREDITPLUS_PLATFORM_TOKEN")


def _required(name: str) -> str:
    return f"${{{name}:?set {name} in .env (see .env.example)}}"


def compose_endpoints() -> Endpoints:
    """The deployment as the containers see each other; secrets come from ``.env``."""
    return Endpoints(
        executor="CeleryExecutor",
        airflow_home="/opt/airflow",
        creditplus_home=COMPOSE_HOME,
        dags_folder="/opt/creditplus/dags",
        metadata_url=f"postgresql+psycopg2://airflow:{_required('AIRFLOW_DB_PASSWORD')}@airflow-db:5432/airflow",
        broker_url="redis://redis:6379/0",
        api_host="0.0.0.0",
        api_port=8080,
        api_base_url="http://airflow-apiserver:8080",
        worker_log_port=8793,
        triggerer_log_port=8794,
        fernet_key=_required("AIRFLOW_FERNET_KEY"),
        jwt_secret=_required("AIRFLOW_JWT_SECRET"),
        # in a URL or JSON value a ${VAR:?message} would be split at its colon: required elsewhere
        warehouse_url="postgresql://creditplus:${WAREHOUSE_PASSWORD}@warehouse:5432/creditplus",
        platform_url="${CREDITPLUS_PLATFORM_URL:-http://simulator:8600}",
        platform_token="${CREDITPLUS_PLATFORM_TOKEN}",
        alert_email="${CREDITPLUS_ALERT_EMAIL:-}",
        smtp_url="${CREDITPLUS_SMTP_URL:-}",
        platform_pool_slots=f"${{CREDITPLUS_PLATFORM_POOL_SLOTS:-{config.DEFAULT_PLATFORM_POOL_SLOTS}}}",
    )


def _healthcheck(test: tuple[str, ...], interval: str = "30s") -> dict:
    return {"test": ["CMD", *test], "interval": interval, "timeout": "30s", "retries": 5, "start_period": "60s"}


def compose() -> dict:
    """docker-compose.yml as data. Parts every Airflow service shares are the same Python objects, written
    once under ``x-airflow-common`` and referred to by YAML aliases (``compose_yaml``)."""
    env = airflow_settings(compose_endpoints())
    build = {"context": ".", "dockerfile_inline": "\n".join([
        f"FROM apache/airflow:{AIRFLOW_VERSION}-python3.11",
        "COPY --chown=airflow:root requirements.lock pyproject.toml /opt/creditplus/",
        f'RUN pip install --no-cache-dir "apache-airflow=={AIRFLOW_VERSION}" -r /opt/creditplus/requirements.lock',
        *(f"COPY --chown=airflow:root {folder} /opt/creditplus/{folder}"
          for folder in ("src", "dags", "dbt_project", "expectations")),
        "RUN pip install --no-cache-dir --no-deps -e /opt/creditplus \\",
        " && python -m creditplus.dbt_runner parse",
        "",
    ])}
    volumes = ["airflow-logs:/opt/airflow/logs", f"creditplus-home:{COMPOSE_HOME}"]
    ready = {"airflow-db": {"condition": "service_healthy"}, "redis": {"condition": "service_healthy"},
             "warehouse": {"condition": "service_healthy"},
             "airflow-init": {"condition": "service_completed_successfully"}}
    airflow = {}
    for service in SERVICES:
        depends = ready if service.name == "apiserver" else {  # the others talk to the execution API
            **ready, "airflow-apiserver": {"condition": "service_healthy"}}
        airflow[f"airflow-{service.name}"] = {
            "image": IMAGE, "build": build, "environment": env, "volumes": volumes,
            "command": ["airflow", *service.args],
            **({"ports": ["8080:8080"]} if service.name == "apiserver" else {}),
            "healthcheck": _healthcheck(service.healthcheck),
            "depends_on": depends,
            "restart": "unless-stopped",
        }

    def postgres(user: str, password: str, volume: str) -> dict:
        return {"image": "postgres:16.6",
                "environment": {"POSTGRES_DB": user, "POSTGRES_USER": user, "POSTGRES_PASSWORD": _required(password)},
                "volumes": [f"{volume}:/var/lib/postgresql/data"],
                "healthcheck": _healthcheck(("pg_isready", "-U", user, "-d", user), "10s"),
                "restart": "unless-stopped"}

    return {
        "x-airflow-common": {"image": IMAGE, "build": build, "environment": env, "volumes": volumes},
        "services": {
            "warehouse": {**postgres("creditplus", "WAREHOUSE_PASSWORD", "warehouse-data"), "ports": ["5432:5432"]},
            "airflow-db": postgres("airflow", "AIRFLOW_DB_PASSWORD", "airflow-db-data"),
            "redis": {"image": "redis:7.4.1", "healthcheck": _healthcheck(("redis-cli", "ping"), "10s"),
                      "restart": "unless-stopped"},
            "airflow-init": {
                "image": IMAGE, "build": build, "environment": env, "volumes": volumes,
                "command": ["creditplus", "airflow", "init"],
                "depends_on": {"airflow-db": {"condition": "service_healthy"}},
                "restart": "no",
            },
            **airflow,
            "simulator-data": {
                "image": IMAGE, "build": build,
                "entrypoint": [],
                "user": "0:0",  # writes the fresh named volume
                "command": ["bash", "-c", "test -d /data/city || creditplus platform generate --out /data/city "
                            "--enterprises 3000"],
                "volumes": ["simulator-data:/data"],
                "restart": "no",
            },
            "simulator": {
                "image": IMAGE, "build": build,
                "entrypoint": [],
                "command": ["creditplus", "platform", "serve", "--data", "/data/city", "--host", "0.0.0.0",
                            "--port", "8600"],
                "environment": {"CREDITPLUS_PLATFORM_TOKEN": _required("CREDITPLUS_PLATFORM_TOKEN")},
                "volumes": ["simulator-data:/data:ro"],
                "depends_on": {"simulator-data": {"condition": "service_completed_successfully"}},
                "healthcheck": _healthcheck(("curl", "--fail", "http://localhost:8600/healthz"), "10s"),
                "restart": "unless-stopped",
            },
        },
        "volumes": {name: {} for name in ("warehouse-data", "airflow-db-data", "airflow-logs", "creditplus-home",
                                          "simulator-data")},
    }


def compose_yaml() -> str:
    """docker-compose.yml as text: shared parts as named YAML anchors, multi-line strings as blocks, short
    lists inline."""
    import yaml

    common = compose()
    shared = common["x-airflow-common"]
    names = {id(shared[key]): f"airflow-{key}" for key in ("build", "environment", "volumes")}

    class Dumper(yaml.SafeDumper):
        def ignore_aliases(self, data) -> bool:  # only the shared parts are aliased, under their own names
            return id(data) not in names

        def generate_anchor(self, node):
            return next(names[oid] for oid, seen in self.represented_objects.items() if seen is node)

    def text(dumper, value: str):
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style="|" if "\n" in value else None)

    def sequence(dumper, value: list):
        inline = all(isinstance(v, str) and "\n" not in v for v in value) and sum(map(len, value)) < 100
        return dumper.represent_sequence("tag:yaml.org,2002:seq", value, flow_style=inline)

    Dumper.add_representer(str, text)
    Dumper.add_representer(list, sequence)
    return COMPOSE_HEADER + "\n" + yaml.dump(common, Dumper=Dumper, sort_keys=False, allow_unicode=True, width=120)


if __name__ == "__main__":
    sys.stdout.write(compose_yaml())
