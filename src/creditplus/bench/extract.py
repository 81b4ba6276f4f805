"""``creditplus bench extract --enterprises N``: extract-and-load throughput against its floors.

One run, one window (everything before the cutoff of the dataset's last day), no faults:

* extract-and-load: ``extract_all`` of every resource into a fresh database;
* floor (a): paging the same window over HTTP (pages decoded, nothing loaded);
* floor (b): ``COPY`` of the archived rows from local files into the emptied archive.

The dataset is generated once and cached under ``config.home()/bench/``; the simulator
runs in its own process (``creditplus platform serve``) so it does not share our GIL; the
scratch database lives on the configured warehouse server (or the embedded one) and is
dropped at the end. What runs is shown as it runs (``bench.progress``: a bar on a terminal, else a
line per stage); the figures come last, on stdout.
"""
from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from creditplus import config, warehouse
from creditplus.bench.progress import Stages
from creditplus.errors import UserError
from creditplus.extract import Platform, extract_all
from creditplus.resources import RESOURCES, Resource

SEED = 42
END_DATE = dt.date(2026, 11, 26)
TOKEN = "bench-token"
COPY_COLUMNS = ("updated_at", "record", "_load_id", "_loaded_at")


def cached_dataset(enterprises: int, stage: Stages) -> Path:
    """The generated dataset for ``enterprises`` (generated on first use, a stage of its own, then reused)."""
    from creditplus.platform.generator import VERSION as GENERATOR_VERSION, generate

    path = config.home() / "bench" / f"dataset-{enterprises}-seed{SEED}-{END_DATE}-v{GENERATOR_VERSION}"
    if not path.is_dir():
        partial = path.with_name(path.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        stage(f"generating {enterprises} enterprises into {path} (cached for later runs)", unplanned=True)
        generate(partial, enterprises, SEED, END_DATE, 5, progress=stage.count("enterprises"))
        partial.rename(path)
    return path


@contextlib.contextmanager
def serving(data_dir: Path) -> Iterator[str]:
    """``creditplus platform serve`` of ``data_dir`` in a child process; yields its URL."""
    port = warehouse.free_port()
    url = f"http://127.0.0.1:{port}"
    child = subprocess.Popen([sys.executable, "-m", "creditplus.cli", "platform", "serve", "--data", str(data_dir),
                              "--port", str(port)], env={**os.environ, "CREDITPLUS_PLATFORM_TOKEN": TOKEN},
                             stdout=subprocess.DEVNULL)
    try:
        while True:
            if child.poll() is not None:
                raise UserError(f"the simulator exited with status {child.returncode} while loading {data_dir}")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            time.sleep(0.2)
        yield url
    finally:
        child.terminate()
        child.wait(30)


@contextlib.contextmanager
def scratch_database() -> Iterator[str]:
    """A fresh, set-up database on the warehouse's server, dropped afterwards."""
    parts = urlsplit(warehouse.url())
    name = f"creditplus_bench_{uuid.uuid4().hex[:8]}"
    admin = urlunsplit(parts._replace(path="/postgres"))
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    url = urlunsplit(parts._replace(path=f"/{name}"))
    try:
        with warehouse.connect(url) as conn:
            warehouse.setup(conn)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def page_everything(platform_url: str, end: dt.datetime) -> int:
    """Floor (a): page every resource's window, decoding pages, loading nothing; records seen."""
    with Platform(platform_url, TOKEN) as platform:
        return sum(len(items) for res in RESOURCES for items, _ in platform.pages(res.name, None, end))


def _columns(res: Resource) -> sql.Composed:
    return sql.SQL(", ").join(map(sql.Identifier, (*res.key, *COPY_COLUMNS)))


def copy_from_files(warehouse_url: str, workdir: Path) -> tuple[int, float]:
    """Floor (b): dump the archive to local files (untimed), empty it, and time ``COPY`` back in."""
    with warehouse.connect(warehouse_url) as conn:
        for res in RESOURCES:
            table = sql.Identifier(res.name)
            with (workdir / f"{res.name}.copy").open("wb") as out, conn.cursor().copy(
                    sql.SQL("copy raw.{} ({}) to stdout").format(table, _columns(res))) as copy:
                for block in copy:
                    out.write(block)
            conn.execute(sql.SQL("truncate raw.{}").format(table))
        conn.commit()
        began = time.perf_counter()
        rows = 0
        for res in RESOURCES:
            with (workdir / f"{res.name}.copy").open("rb") as source, conn.cursor() as cur:
                with cur.copy(sql.SQL("copy raw.{} ({}) from stdin").format(
                        sql.Identifier(res.name), _columns(res))) as copy:
                    while block := source.read(1 << 20):
                        copy.write(block)
                rows += cur.rowcount
        conn.commit()
        return rows, time.perf_counter() - began


def _line(label: str, records: int, seconds: float) -> str:
    return f"{label:<34}{records:>12,} records {seconds:>9.1f} s {records / seconds if seconds else 0:>11,.0f} records/s"


def main(args) -> int:
    if args.enterprises < 1:
        raise UserError("--enterprises must be at least 1, e.g. --enterprises 100000")
    with Stages("bench extract", 4) as stage:
        data_dir = cached_dataset(args.enterprises, stage)
        end = config.cutoff(END_DATE)
        print(f"dataset {data_dir}; window: everything updated before {end.isoformat()}", flush=True)
        stage("starting the simulator (it indexes the dataset first)")
        with serving(data_dir) as platform_url, scratch_database() as warehouse_url:
            stage("floor (a): paging every resource")
            began = time.perf_counter()
            paged = page_everything(platform_url, end)
            paging_seconds = time.perf_counter() - began

            stage("extract-and-load of every resource")
            began = time.perf_counter()
            runs = extract_all(END_DATE, warehouse_url=warehouse_url, platform_url=platform_url, token=TOKEN)
            extract_seconds = time.perf_counter() - began
            archived = sum(run["archived"] for run in runs.values())
            fetched = sum(run["fetched"] for run in runs.values())

            stage("floor (b): COPY of the archived rows from local files")
            workdir = config.home() / "bench" / "copy-floor"
            workdir.mkdir(parents=True, exist_ok=True)
            try:
                copied, copy_seconds = copy_from_files(warehouse_url, workdir)
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    quarantined = sum(run["quarantined"] for run in runs.values())
    print(f"enterprises {args.enterprises:,}: {fetched:,} record versions fetched, {archived:,} archived, "
          f"{quarantined:,} quarantined")
    print(_line("extract-and-load (all resources)", archived, extract_seconds))
    print(_line("floor (a) HTTP paging, no load", paged, paging_seconds))
    print(_line("floor (b) COPY from local files", copied, copy_seconds))
    print(f"ratio extract-and-load / floor (a): {extract_seconds / paging_seconds:.2f} (target <= 1.5); "
          f"/ floor (b): {extract_seconds / copy_seconds:.2f}")
    return 0
