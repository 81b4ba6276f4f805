"""Settings and paths, defined once. Everything comes from the environment.

``CREDITPLUS_WAREHOUSE_URL``  PostgreSQL URL; unset: an embedded server under ``.creditplus/``
``CREDITPLUS_PLATFORM_URL``   the credit platform's base URL (default http://127.0.0.1:8600)
``CREDITPLUS_PLATFORM_TOKEN`` its bearer token
``CREDITPLUS_HOME``           working folder for the embedded warehouse, Airflow, logs (default ``.creditplus``)
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = PROJECT_ROOT / "dbt_project"
DAGS_DIR = PROJECT_ROOT / "dags"
EXPECTATIONS_DIR = PROJECT_ROOT / "expectations"

# Fixed offset of the platform and of every evaluation date (spec: +08:00, no DST).
CST = dt.timezone(dt.timedelta(hours=8), "+08:00")
DEFAULT_PLATFORM_URL = "http://127.0.0.1:8600"


def home() -> Path:
    path = Path(os.environ.get("CREDITPLUS_HOME") or PROJECT_ROOT / ".creditplus").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def platform_url() -> str:
    return os.environ.get("CREDITPLUS_PLATFORM_URL") or DEFAULT_PLATFORM_URL


def platform_token() -> str | None:
    return os.environ.get("CREDITPLUS_PLATFORM_TOKEN") or None


def configured_warehouse_url() -> str | None:
    return os.environ.get("CREDITPLUS_WAREHOUSE_URL") or None


def cutoff(evaluation_date: dt.date) -> dt.datetime:
    """Knowledge cutoff of evaluation date D: D+1 00:00 +08:00 (exclusive)."""
    return dt.datetime.combine(evaluation_date + dt.timedelta(days=1), dt.time(), CST)
