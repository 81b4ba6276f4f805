"""``creditplus demo``: generate a city, serve it, grade yesterday through Airflow, say where to look.

Runs on embedded defaults: the dataset is cached under ``config.home()/demo/`` keyed by
its arguments, the simulator serves it on a free port with a random token for the length
of the run, and the warehouse is a fresh ``creditplus_demo`` database on the embedded
PostgreSQL (or ``CREDITPLUS_WAREHOUSE_URL`` when set).
"""
from __future__ import annotations

import datetime as dt
import secrets
import shutil
import time
from pathlib import Path

import psycopg
from psycopg import sql

from creditplus import config, nightly, warehouse

SEED = 42
YEARS = 5
DEMO_DB = "creditplus_demo"
PORTAL_HOST, PORTAL_PORT = "127.0.0.1", 8700  # `creditplus portal serve`'s defaults


def main(args) -> int:
    day = dt.datetime.now(config.CST).date() - dt.timedelta(days=1)
    started = time.monotonic()
    data = dataset(args.enterprises, day)
    warehouse_url = config.configured_warehouse_url() or fresh_embedded_database(DEMO_DB)
    token = secrets.token_urlsafe(16)
    from creditplus.platform.server import running

    with running(data, token=token) as platform_url:
        print(f"demo: serving {data} at {platform_url}", flush=True)
        status = nightly.run(day, warehouse_url=warehouse_url, platform_url=platform_url, token=token)
    print(f"demo: finished in {time.monotonic() - started:.0f} s; the simulator is stopped"
          + ("" if config.configured_warehouse_url() else
             ", the embedded warehouse keeps running (`make clean` stops it and removes .creditplus/)"))
    print("\n".join(where_to_look(day, warehouse_url)))
    return status


def where_to_look(day: dt.date, warehouse_url: str) -> list[str]:
    """The last lines: the night's report, the Data Docs, and the command that serves the portal on the demo's
    warehouse, with its address."""
    import os

    from creditplus import airflow_env, quality, report

    page = report.path_for(day)
    docs = quality.data_docs_dir() / "index.html"
    command = airflow_env.venv_bin("creditplus")
    if not (relative := os.path.relpath(command)).startswith(".."):
        command = relative
    env = "" if config.configured_warehouse_url() else f"CREDITPLUS_WAREHOUSE_URL={warehouse.redact(warehouse_url)} "
    return ["demo: where to look",
            f"  report:    {page if page.exists() else '(not written: see the night above)'}",
            f"  Data Docs: {docs if docs.exists() else '(not rendered: see the night above)'}",
            f"  portal:    {env}{command} portal serve    # then open http://{PORTAL_HOST}:{PORTAL_PORT}/",
            f"  sign in:   {demo_sign_in(warehouse_url)}"]


def demo_sign_in(warehouse_url: str) -> str:
    """A credential for the best-graded enterprise of the current publication, so the enterprise's own page can be
    tried (the credit office issues real ones with `creditplus portal credential`)."""
    from creditplus import portal

    with warehouse.connect(warehouse_url) as conn, conn.transaction():
        best = conn.execute("select uscc from gov_share.enterprise_evaluation"
                            " order by total_score desc, uscc limit 1").fetchone()
        if best is None:
            return "(nothing published: see the night above)"
        _, credential, _ = portal.issue_credential(conn, best[0], days=1)
    return f"{best[0]} with credential {credential}    # issued for the demo, valid 1 day"


def dataset(enterprises: int, end: dt.date) -> Path:
    """The generated dataset for these arguments, generated once (atomically) and reused."""
    from creditplus.platform.generator import VERSION as GENERATOR_VERSION, generate

    path = config.home() / "demo" / f"city-{enterprises}e-seed{SEED}-{YEARS}y-{end}-v{GENERATOR_VERSION}"
    if path.is_dir():
        print(f"demo: reusing the dataset in {path}", flush=True)
        return path
    partial = path.with_name(path.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    started = time.monotonic()
    counts = generate(partial, enterprises, SEED, end, YEARS, progress=True)  # a bar on a terminal
    partial.rename(path)
    print(f"demo: generated {sum(counts.values())} record versions for {enterprises} enterprises through {end} "
          f"in {time.monotonic() - started:.0f} s -> {path}", flush=True)
    return path


def fresh_embedded_database(name: str) -> str:
    """An empty database ``name`` on the embedded server (dropped first if it exists)."""
    server = warehouse.start_embedded().rsplit("/", 1)[0]
    with psycopg.connect(f"{server}/postgres", autocommit=True) as conn:
        conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    return f"{server}/{name}"
