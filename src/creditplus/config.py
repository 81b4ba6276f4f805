"""Settings and paths, defined once. Everything comes from the environment.

``ENVIRONMENT`` is the one list of the variables read, with their meaning and default: README's
configuration table is ``environment_table()`` (a test holds the two equal), and each command's
``--help`` lists the ones it reads from it.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import NamedTuple

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


class Variable(NamedTuple):
    meaning: str  # Markdown, as README's table shows it
    default: str


ENVIRONMENT: dict[str, Variable] = {
    "CREDITPLUS_WAREHOUSE_URL": Variable(
        "PostgreSQL URL of the warehouse", "an embedded PostgreSQL under `.creditplus/pg`, on loopback TCP"),
    "CREDITPLUS_PLATFORM_URL": Variable("the credit platform's base URL", f"`{DEFAULT_PLATFORM_URL}`"),
    "CREDITPLUS_PLATFORM_TOKEN": Variable("the credit platform's bearer token", "none"),
    "CREDITPLUS_HOME": Variable(
        "working folder (embedded PostgreSQL, Airflow homes and logs, Data Docs, demo data)", "`.creditplus`"),
    "CREDITPLUS_REDIS_URL": Variable(
        "Celery's broker for `airflow up`", f"`{DEFAULT_REDIS_URL}` where one answers, else the LocalExecutor"),
    "CREDITPLUS_AIRFLOW_PORT": Variable("the API server's (and UI's) port", f"`{DEFAULT_AIRFLOW_PORT}`"),
    "CREDITPLUS_AIRFLOW_SETTINGS": Variable(
        "more Airflow settings for the services, a JSON object of `AIRFLOW__SECTION__KEY` values", "none"),
    "CREDITPLUS_ALERT_EMAIL": Variable(
        "who is mailed when a night fails or misses its deadline (comma-separated)", "none: no mail"),
    "CREDITPLUS_SMTP_URL": Variable(
        "the mail server, as an Airflow connection URI: `smtp://[user:password@]host:port?from_email=...`", "none"),
    "CREDITPLUS_PUBLISH_DEADLINE": Variable(
        "time of day (Asia/Shanghai, HH:MM) by which the 01:30 night must have published",
        f"`{DEFAULT_PUBLISH_DEADLINE}`"),
    "CREDITPLUS_PLATFORM_POOL_SLOTS": Variable(
        "extract tasks that may call the platform at once (pool `creditplus_platform`)",
        f"`{DEFAULT_PLATFORM_POOL_SLOTS}`"),
    "CREDITPLUS_NIGHTLY_SCHEDULE": Variable(
        "`on`: credit_nightly runs every day at 01:30 Asia/Shanghai; `off`: only the nights triggered through the "
        "REST API (`nightly --scheduler`, `backfill`)", "`on`"),
    "CREDITPLUS_MAX_RETRY_AFTER": Variable(
        "the longest `Retry-After` (seconds) a platform request waits; a longer one fails the extract attempt at once",
        f"`{DEFAULT_MAX_RETRY_AFTER_S}`"),
    "CREDITPLUS_PORTAL_PUBLIC_URL": Variable(
        "the portal's connection for the public lookup: a login user granted `public_query`",
        "none: the warehouse URL with `SET LOCAL ROLE public_reader`"),
    "CREDITPLUS_PORTAL_ENTERPRISE_URL": Variable(
        "the portal's connection for enterprises' pages: a login user granted `enterprise_self`",
        "none: the warehouse URL with `SET LOCAL ROLE enterprise_portal`"),
    "CREDITPLUS_ACCESS_PASSWORD": Variable(
        "the login user's password for `access grant` (else one line piped on stdin; needed for a new user)",
        "none"),
    "CREDITPLUS_DBT_WORK_MEM": Variable("PostgreSQL's `work_mem` for dbt's connections", "`64MB`"),
}


def environment_table() -> str:
    """README's configuration table (Markdown), made from ``ENVIRONMENT``."""
    rows = [f"| `{name}` | {v.meaning} | {v.default} |" for name, v in ENVIRONMENT.items()]
    return "\n".join(["| variable | meaning | default |", "|---|---|---|", *rows])


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
