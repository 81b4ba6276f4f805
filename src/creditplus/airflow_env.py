"""Airflow's side of the settings: a local AIRFLOW_HOME and the two connections.

The DAG reads the warehouse and the platform only through the Airflow connections
``creditplus_warehouse`` and ``creditplus_platform``; ``connection_env`` turns the
creditplus settings into the ``AIRFLOW_CONN_*`` variables that deliver them, and
``warehouse_url`` / ``platform`` turn a connection back into what the tasks need.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, unquote, urlsplit

from creditplus import config
from creditplus.errors import UserError

WAREHOUSE_CONN_ID = "creditplus_warehouse"
PLATFORM_CONN_ID = "creditplus_platform"
SMTP_CONN_ID = "creditplus_smtp"  # alerts to operators (config.smtp_url)


def airflow_home() -> Path:
    path = config.home() / "airflow"
    path.mkdir(parents=True, exist_ok=True)
    return path


def venv_bin(name: str) -> str:
    """An executable (``airflow``, ``dbt``) installed beside the running Python."""
    return str(Path(sys.executable).with_name(name))


def create_private(path: Path, text: str) -> None:
    """Create ``path`` holding ``text`` (a secret), readable by its owner only from its first byte."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)


def connection_env(warehouse_url: str, platform_url: str, token: str, smtp_url: str = "") -> dict[str, str]:
    """``AIRFLOW_CONN_*`` variables for the connections (JSON form; the token is the password; the SMTP
    server's, when given, as the Airflow connection URI it already is)."""
    wh = urlsplit(warehouse_url)
    warehouse = {
        "conn_type": "postgres",
        "host": wh.hostname,
        "port": wh.port or 5432,
        "login": unquote(wh.username or "postgres"),
        "password": unquote(wh.password or ""),
        "schema": wh.path.lstrip("/"),
    }
    platform = {"conn_type": "http", "host": platform_url.rstrip("/"), "password": token}
    return {
        f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}": json.dumps(warehouse),
        f"AIRFLOW_CONN_{PLATFORM_CONN_ID.upper()}": json.dumps(platform),
        **({f"AIRFLOW_CONN_{SMTP_CONN_ID.upper()}": smtp_url} if smtp_url else {}),
    }


def warehouse_url(conn) -> str:
    """PostgreSQL URL of an Airflow connection made by ``connection_env`` (or any postgres one)."""
    auth = quote(conn.login or "postgres", safe="")
    if conn.password:
        auth += ":" + quote(conn.password, safe="")
    return f"postgresql://{auth}@{conn.host}:{conn.port or 5432}/{conn.schema}"


def platform(conn) -> tuple[str, str]:
    """(base URL, token) of the platform connection."""
    return conn.host, conn.password


def local_env(connections: dict[str, str]) -> dict[str, str]:
    """Process environment for Airflow CLI runs on this machine: SQLite metadata, no examples."""
    home = airflow_home()
    return {
        **os.environ,
        **connections,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(config.DAGS_DIR),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__USAGE_DATA_COLLECTION__ENABLED": "False",
        "AIRFLOW__COSMOS__ENABLE_TELEMETRY": "False",
        "AIRFLOW__COSMOS__CACHE_DIR": str(home / "cosmos"),  # dbt partial-parse cache, per home
        "DO_NOT_TRACK": "1",
        "CREDITPLUS_IN_PROCESS": "1",  # dag.test() cannot run Cosmos's watcher: one dbt build task
    }


def migrate(env: dict[str, str]) -> None:
    """``airflow db migrate`` once per Airflow version; later calls only compare a stamp file."""
    from importlib.metadata import version

    stamp = Path(env["AIRFLOW_HOME"]) / f".migrated-{version('apache-airflow')}"
    if stamp.exists():
        return
    proc = subprocess.run([venv_bin("airflow"), "db", "migrate"], env=env, capture_output=True, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip() or proc.stdout.strip() or "no output").splitlines()[-1]
        raise UserError(f"airflow db migrate failed in {env['AIRFLOW_HOME']}: {last}")
    stamp.touch()
