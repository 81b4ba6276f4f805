"""Shared fixtures: a real PostgreSQL database per test session (and fresh ones on demand).

Tests use the server in ``CREDITPLUS_TEST_SERVER`` (default: the local one on
127.0.0.1:5432 when it answers); without one they start the embedded server.
"""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
import pytest
from psycopg import sql

from creditplus import portal, warehouse

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432"
AIRFLOW_HOME = Path(tempfile.mkdtemp(prefix="creditplus-test-airflow-"))


def _interrupt(signum, frame):
    raise KeyboardInterrupt(f"signal {signum}")


def pytest_configure(config):
    """Airflow reads its home and metadata database once, at first import (any test module may import it):
    point both at a throwaway home before collection starts. A SIGTERM (a CI timeout) interrupts the session
    like Ctrl-C, so fixtures still stop what they started (Airflow's services, simulators)."""
    signal.signal(signal.SIGTERM, _interrupt)
    os.environ.update({
        "AIRFLOW_HOME": str(AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(Path(__file__).resolve().parents[1] / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{AIRFLOW_HOME / 'airflow.db'}",
    })


def pytest_unconfigure(config):
    shutil.rmtree(AIRFLOW_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def airflow_home() -> Path:
    """The session's Airflow home, its metadata database migrated (once)."""
    from creditplus import airflow_env

    airflow_env.migrate(dict(os.environ))
    return AIRFLOW_HOME


def _server_url(tmp_path_factory) -> str:
    server = os.environ.get("CREDITPLUS_TEST_SERVER")
    if server:
        return server.rstrip("/")
    try:
        socket.create_connection(("127.0.0.1", 5432), timeout=1).close()
        return DEFAULT_SERVER
    except OSError:
        os.environ.setdefault("CREDITPLUS_HOME", str(tmp_path_factory.mktemp("creditplus-home")))
        embedded = warehouse.start_embedded()
        return embedded.rsplit("/", 1)[0]


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory) -> str:
    return _server_url(tmp_path_factory)


@pytest.fixture(scope="session")
def make_database(pg_server):
    """Factory: a new empty database URL; every database made is dropped at the end."""
    made: list[str] = []

    def make(prefix: str = "cp_test") -> str:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
        made.append(name)
        return f"{pg_server}/{name}"

    yield make
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as conn:
        for name in made:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


@pytest.fixture
def warehouse_url(make_database, monkeypatch) -> str:
    """A fresh, set-up warehouse database, also exported as CREDITPLUS_WAREHOUSE_URL."""
    url = make_database()
    with warehouse.connect(url) as conn:
        warehouse.setup(conn)
    monkeypatch.setenv("CREDITPLUS_WAREHOUSE_URL", url)
    return url


def database_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


# ---------------------------------------------------------------- one in-process night, shared
# Copies of what the tests read from ../shared (a user's clone has no shared/): tests/fixtures/README.md.
FIXTURES = Path(__file__).resolve().parent / "fixtures"
BASIC_CASE = FIXTURES / "basic-2026-11-26"
BASIC_DAY = "2026-11-26"
CLI = str(Path(sys.executable).with_name("creditplus"))


def cli_env(home: Path, warehouse_url: str, platform_url: str, token: str, **extra: str) -> dict[str, str]:
    """The environment a user's shell gives ``creditplus``: its home, warehouse and platform."""
    return {**os.environ, "CREDITPLUS_HOME": str(home), "CREDITPLUS_WAREHOUSE_URL": warehouse_url,
            "CREDITPLUS_PLATFORM_URL": platform_url, "CREDITPLUS_PLATFORM_TOKEN": token, **extra}


@pytest.fixture(scope="session")
def basic_platform():
    """The basic acceptance dataset, served over loopback for the session."""
    from creditplus.platform.server import running

    with running(BASIC_CASE / "dataset", token="basic-case-token") as url:
        yield url, "basic-case-token"


@pytest.fixture(scope="session")
def in_process_night(make_database, basic_platform, tmp_path_factory) -> dict:
    """``creditplus nightly --date 2026-11-26`` (in-process) of the basic case into a fresh warehouse, once:
    the reference the scheduler's nights are compared with."""
    home = tmp_path_factory.mktemp("creditplus-home")
    url = make_database("cp_nightly")
    env = cli_env(home, url, *basic_platform)
    result = subprocess.run([CLI, "nightly", "--date", BASIC_DAY], env=env, capture_output=True, text=True,
                            timeout=1800)
    return {"url": url, "home": home, "env": env, "result": result}


def published(url: str) -> tuple[dict, dict]:
    """What gov_share publishes, keyed for comparison: (uscc -> evaluation), ((uscc, indicator) -> points).
    previous_grade and published_at depend on the publication's history, not on the night: left out."""
    with psycopg.connect(url) as conn:
        evaluations = {row[0]: row[1:] for row in conn.execute(
            "select uscc, evaluation_date, model_version, total_score, grade, computed_grade, cap_reason, basic_score,"
            " operations_score, social_score from gov_share.enterprise_evaluation")}
        points = {(u, i): (p, m, o) for u, i, p, m, o in conn.execute(
            "select uscc, indicator_code, points, max_points, under_objection from gov_share.indicator_scores")}
    return evaluations, points


def portal_credential(url: str, uscc: str) -> str:
    """A fresh portal credential for ``uscc``, issued as the credit office issues it."""
    with warehouse.connect(url) as conn, conn.transaction():
        return portal.issue_credential(conn, uscc)[1]


# ---------------------------------------------------------------- a real headless browser (make browser)
@pytest.fixture(scope="session")
def browser():
    """Debian's headless Chromium through its ChromeDriver, with every host but loopback unresolvable (as in the
    bureau's isolated network): a page that loads anything from the internet shows it in ``browser_errors``."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600",
                     "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",
                     "--lang=zh-CN"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service("/usr/bin/chromedriver"))
    try:
        yield driver
    finally:
        driver.quit()


def browser_errors(driver) -> list[str]:
    """The console's errors and failed loads since the last call (the log is drained)."""
    return [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]


SCREENSHOTS = Path(__file__).resolve().parent.parent / ".creditplus" / "screenshots"
