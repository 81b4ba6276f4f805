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
    return status


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
    counts = generate(partial, enterprises, SEED, end, YEARS)
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
