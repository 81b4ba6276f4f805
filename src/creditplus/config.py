"""Settings and paths, defined once. Everything comes from the environment.

``CREDITPLUS_WAREHOUSE_URL``  PostgreSQL URL; unset: an embedded server under ``.creditplus/``
``CREDITPLUS_PLATFORM_URL``   the credit platform's base URL (default http://127.0.0.1:8600)
``CREDITPLUS_PLATFORM_TOKEN`` its bearer token
``CREDITPLUS_HOME``           working folder for the embedded warehouse, Airflow, logs (default ``.creditplus``)
``CREDITPLUS_REDIS_URL``      Celery's broker for ``creditplus airflow up`` (default redis://127.0.0.1:6379/0
                              where one answers; none: the LocalExecutor)
``CREDITPLUS_AIRFLOW_PORT``   the Airflow API server's and UI's port for ``airflow up`` (default 8080)
``CREDITPLUS_ALERT_EMAIL``    who is mailed when a night fails or misses its deadline (comma-separated)
``CREDITPLUS_SMTP_URL``       the mail server, as an Airflow connection URI:
                              ``smtp://[user:password@]host:port?from_email=...&disable_ssl=true``
``CREDITPLUS_PLATFORM_POOL_SLOTS``  concurrent extract tasks against the platform (default 2)
``CREDITPLUS_AIRFLOW_SETTINGS``     more Airflow settings for ``airflow up``'s services, as a JSON object of
                              ``AIRFLOW__SECTION__KEY`` values (e.g. a shorter task heartbeat timeout)
``CREDITPLUS_PUBLISH_DEADLINE``     time of day (Asia/Shanghai, HH:MM[:SS]) by which the 01:30 night must
                              have published, else a deadline alert (default 07:00)
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
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_AIRFLOW_PORT = 8080
DEFAULT_MAX_RETRY_AFTER_S = 300  # 5 minutes: the night's extract task waits no longer for a 429
DEFAULT_PLATFORM_POOL_SLOTS = 2
DEFAULT_PUBLISH_DEADLINE = "07:00"


def home() -> Path:
    path = Path(os.environ.get("CREDITPLUS_HOME") or PROJECT_ROOT / ".creditplus").resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def platform_url() -> str:
    return os.environ.get("CREDITPLUS_PLATFORM_URL") or DEFAULT_PLATFORM_URL


def platform_token() -> str | None:
    return os.environ.get("CREDITPLUS_PLATFORM_TOKEN") or None


def redis_url() -> str | None:
    """``CREDITPLUS_REDIS_URL`` as set (None: not set, the default is tried)."""
    return os.environ.get("CREDITPLUS_REDIS_URL") or None


def airflow_port() -> int:
    return int(os.environ.get("CREDITPLUS_AIRFLOW_PORT") or DEFAULT_AIRFLOW_PORT)


def alert_email() -> str:
    return os.environ.get("CREDITPLUS_ALERT_EMAIL", "").strip()


def smtp_url() -> str:
    return os.environ.get("CREDITPLUS_SMTP_URL", "").strip()


def nightly_scheduled() -> bool:
    """``CREDITPLUS_NIGHTLY_SCHEDULE``: ``on`` (default) runs credit_nightly at 01:30 Asia/Shanghai; ``off`` runs
    only the nights triggered through Airflow's REST API (``nightly --scheduler``, ``backfill``)."""
    value = (os.environ.get("CREDITPLUS_NIGHTLY_SCHEDULE") or "on").strip().lower()
    if value not in ("on", "off"):
        raise ValueError(f"CREDITPLUS_NIGHTLY_SCHEDULE must be on or off, not {value!r}")
    return value == "on"


def max_retry_after() -> float:
    """The longest ``Retry-After`` (seconds) a platform request waits; a longer one fails the attempt."""
    return float(os.environ.get("CREDITPLUS_MAX_RETRY_AFTER") or DEFAULT_MAX_RETRY_AFTER_S)


def platform_pool_slots() -> int:
    return int(os.environ.get("CREDITPLUS_PLATFORM_POOL_SLOTS") or DEFAULT_PLATFORM_POOL_SLOTS)


def airflow_settings() -> dict[str, str]:
    import json

    text = os.environ.get("CREDITPLUS_AIRFLOW_SETTINGS") or "{}"
    try:
        settings = json.loads(text)
    except ValueError:
        settings = None
    if not isinstance(settings, dict) or not all(isinstance(k, str) and k.startswith("AIRFLOW__") for k in settings):
        raise ValueError("CREDITPLUS_AIRFLOW_SETTINGS must be a JSON object of AIRFLOW__SECTION__KEY settings, "
                         'e.g. {"AIRFLOW__CORE__PARALLELISM": "4"}')
    return {k: str(v) for k, v in settings.items()}


def publish_deadline_time() -> dt.time:
    text = os.environ.get("CREDITPLUS_PUBLISH_DEADLINE") or DEFAULT_PUBLISH_DEADLINE
    try:
        return dt.time.fromisoformat(text)
    except ValueError:
        raise ValueError(f"CREDITPLUS_PUBLISH_DEADLINE={text!r} is not a time of day; use HH:MM, e.g. 07:00") from None


def configured_warehouse_url() -> str | None:
    return os.environ.get("CREDITPLUS_WAREHOUSE_URL") or None


def cutoff(evaluation_date: dt.date) -> dt.datetime:
    """Knowledge cutoff of evaluation date D: D+1 00:00 +08:00 (exclusive)."""
    return dt.datetime.combine(evaluation_date + dt.timedelta(days=1), dt.time(), CST)


def not_yet(evaluation_date: dt.date) -> str | None:
    """Why D cannot be graded yet (it is after today at +08:00: its records do not exist, and its cutoff
    would move the extraction watermark past the present), or None."""
    today = dt.datetime.now(CST).date()
    return f"cannot grade {evaluation_date}: it is after today ({today}, +08:00)" if evaluation_date > today else None
