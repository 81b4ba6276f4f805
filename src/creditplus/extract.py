"""Nightly incremental extraction of the credit platform into the raw archive.

For evaluation date D and each resource the window is
``(watermark - lookback, cutoff(D))`` (both exclusive; no watermark: no lower bound),
paged with ``page_size`` 5000. Three stages overlap through bounded queues: a thread
pages over HTTP, a thread validates each page (``load.classify_items``), and the calling
thread ``COPY``-loads it (``load.write_batch``) while PostgreSQL works on its own core.
All pages, the quarantine, the watermark and the run's final ``audit.load_runs`` row
commit in one transaction: a run that fails archives nothing and the next run starts
again from the stored watermark.

Retries (``Retry``): connection errors, timeouts, 5xx and truncated bodies back off
exponentially with jitter, up to ``max_backoff`` (30 s), inside the transaction. A 429 waits its
``Retry-After``: up to ``max_backoff`` inline too; a longer one holds no transaction or lock while
waiting, so later nights do not queue behind it: the attempt ends (rolled back, its lock released,
its ``audit.load_runs`` row failed with the wait in ``error``), the wait is slept with no connection
open, and a new attempt starts from the stored watermark, up to ``attempts`` attempts in all. A
``Retry-After`` beyond ``CREDITPLUS_MAX_RETRY_AFTER`` (default 5 minutes) fails the attempt at once.
Past the attempts, ``ExtractError`` names the resource, the window, the page and the last HTTP status.

Late versions: the platform may leave a version of the 6 hours before ``updated_before`` out of the
first response that should hold it (replication lag), and serves it on any later request. After the
window, its last 6 hours are asked for once more, so night D archives such versions itself (``late``:
how many that pass archived). Lookback: one day; re-reading the last day of the previous window also
picks up what a platform serves later still. Re-read versions cost only a ``duplicates`` count (the
archive is unique on key + ``updated_at``).

Watermark: the exclusive upper bound ``cutoff(D)`` of the last successful window, moved
with ``greatest()`` so a backfill of an earlier night never rewinds it (such a backfill
finds its window already covered and fetches nothing).

Runs: every attempt adds an ``audit.load_runs`` row ``<D>/<resource>/<attempt>``; a
rerun of a night is attempt n+1, ``audit.latest_load_runs`` shows each night's outcome.
"""
from __future__ import annotations

import datetime as dt
import functools
import itertools
import json
import logging
import queue
import random
import ssl
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import httpx
import psycopg

from creditplus import config, warehouse
from creditplus.load import add_counts, classify_items, empty_counts, write_batch
from creditplus.resources import BY_NAME, RESOURCES, resource as registry_entry

log = logging.getLogger(__name__)

REPLICATION_LAG = dt.timedelta(hours=6)  # spec: "late arrivals"
DEFAULT_LOOKBACK = dt.timedelta(days=1)
PAGE_SIZE = 5000
QUEUE_PAGES = 4  # pages (or validated batches) held ahead of the next stage
RETRYABLE_STATUSES = frozenset({429, 500, 502, 503, 504})


class ExtractError(RuntimeError):
    """The platform could not be read (down past the retries, or a request it refuses)."""


class PlatformAskedToWait(ExtractError):
    """A 429 whose ``Retry-After`` (``seconds``) is longer than ``Retry.max_backoff``: ``extract_resource``
    ends the attempt and waits with no transaction or lock held."""

    def __init__(self, message: str, seconds: float):
        super().__init__(message)
        self.seconds = seconds


@dataclass(frozen=True)
class Retry:
    """Per-request retry policy: ``attempts`` tries in all, exponential backoff with jitter
    from ``backoff`` seconds up to ``max_backoff``; a 429's ``Retry-After`` is waited instead, inline up
    to ``max_backoff`` (a longer one, up to ``max_retry_after``, is waited by ``extract_resource`` between
    attempts, ``attempts`` attempts in all, holding no transaction or lock)."""

    attempts: int = 8
    backoff: float = 0.5
    max_backoff: float = 30.0
    timeout: float = 60.0
    max_retry_after: float | None = None  # None: CREDITPLUS_MAX_RETRY_AFTER (default 5 minutes)

    def delay(self, retry: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** retry) * random.uniform(0.5, 1.0)


@functools.cache
def _tls_context() -> ssl.SSLContext:
    """One verifying TLS context per process (building one costs ~0.2 s, per client otherwise)."""
    return httpx.create_ssl_context()


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return max(0.0, float(response.headers.get("retry-after", "")))
    except ValueError:
        return None


def _json(content: bytes) -> object:
    """A response body's JSON. A body that is not valid UTF-8 (a platform with a broken encoder) is read with
    its invalid bytes kept as lone surrogates, so that only the records holding them are refused
    (``load.classify_items``) and the rest of the page is archived."""
    try:
        text = content.decode("utf-8")  # strictly (json.loads(bytes) would let encoded surrogates pass)
    except UnicodeDecodeError:
        text = content.decode("utf-8", "surrogateescape")
    return json.loads(text)


class Platform:
    """A client of the platform API (spec: credit-platform-api.md) with retries.

    Retried: connection errors and timeouts, 429 (after ``Retry-After``), 5xx, and a
    200 whose body is not the expected JSON (truncated). Other statuses raise at once.
    ``wait_outside``: a ``Retry-After`` longer than ``retry.max_backoff`` raises ``PlatformAskedToWait``
    instead of being slept here (the caller holds a transaction).
    """

    def __init__(self, base_url: str, token: str, retry: Retry = Retry(), *, wait_outside: bool = False):
        if not token:
            raise ExtractError("no platform token: set CREDITPLUS_PLATFORM_TOKEN (the platform connection's password)")
        self.base_url, self.retry, self.retries, self.wait_outside = base_url.rstrip("/"), retry, 0, wait_outside
        self.client = httpx.Client(base_url=self.base_url, headers={"Authorization": f"Bearer {token}"},
                                   timeout=httpx.Timeout(retry.timeout, connect=min(10.0, retry.timeout)),
                                   verify=_tls_context())

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc) -> None:
        self.client.close()

    def get_json(self, path: str, params: dict, what: str, expect: str) -> tuple[dict, bytes]:
        """GET ``path`` → (a JSON object holding ``expect``, the body it was decoded from);
        ``what`` names the request in errors."""
        last = "none"
        for attempt in range(self.retry.attempts):
            if attempt:
                self.retries += 1
            wait = None
            try:
                response = self.client.get(path, params=params)
            except httpx.TransportError as exc:
                last = f"none ({type(exc).__name__}: {exc or 'no detail'})"
            else:
                last = str(response.status_code)
                if response.status_code == 200:
                    try:
                        body = _json(response.content)
                    except ValueError:
                        body = None
                    if isinstance(body, dict) and isinstance(body.get(expect), list):
                        return body, response.content
                    last = "200 with an unparseable or incomplete body"
                elif response.status_code in RETRYABLE_STATUSES:
                    wait = _retry_after(response) if response.status_code == 429 else None
                    cap = config.max_retry_after() if self.retry.max_retry_after is None else self.retry.max_retry_after
                    if wait is not None and wait > cap:
                        raise ExtractError(
                            f"{what}: the platform at {self.base_url} asked to wait {wait:.0f} s (HTTP 429 "
                            f"Retry-After), more than the {cap:g} s of CREDITPLUS_MAX_RETRY_AFTER; run again later")
                    if wait is not None and wait > self.retry.max_backoff and self.wait_outside:
                        raise PlatformAskedToWait(
                            f"{what}: the platform at {self.base_url} asked to wait {wait:g} s (HTTP 429 Retry-After), "
                            f"longer than the {self.retry.max_backoff:g} s waited inline (Retry.max_backoff)", wait)
                else:
                    raise ExtractError(
                        f"{what}: the platform at {self.base_url} answered HTTP {response.status_code} "
                        f"({response.text[:200]}); {_fix(response.status_code)}")
            if attempt + 1 < self.retry.attempts:
                time.sleep(self.retry.delay(attempt) if wait is None else wait)
        raise ExtractError(f"{what}: gave up after {self.retry.attempts} attempts; last HTTP status {last}; "
                           f"the platform at {self.base_url} is down or failing, run again later")

    def resources(self) -> list[str]:
        body, _ = self.get_json("/api/v1/resources", {}, "listing resources", "resources")
        return [entry["name"] for entry in body["resources"]]

    def pages(self, resource: str, start: dt.datetime | None, end: dt.datetime,
              page_size: int = PAGE_SIZE) -> Iterator[tuple[list, bytes]]:
        """(items, response body) of each page of ``resource`` updated in the window (start, end)."""
        params = {"updated_before": end.isoformat(), "page_size": page_size}
        if start is not None:
            params["updated_after"] = start.isoformat()
        what = f"{resource} window ({_ts(start)}, {_ts(end)})"
        number = 0
        while True:
            number += 1
            body, raw = self.get_json(f"/api/v1/resources/{resource}", params, f"{what} page {number}", "items")
            yield body["items"], raw
            if not body.get("next_page_token"):
                return
            params["page_token"] = body["next_page_token"]


def _fix(status: int) -> str:
    return {401: "check CREDITPLUS_PLATFORM_TOKEN",
            404: "the platform does not serve this resource; compare GET /api/v1/resources with the registry"
            }.get(status, "the request is wrong for this platform; check CREDITPLUS_PLATFORM_URL")


def _ts(value: dt.datetime | None) -> str:
    return "-" if value is None else value.astimezone(config.CST).isoformat()


def list_resources(platform_url: str, token: str, retry: Retry = Retry()) -> list[str]:
    """Names the platform lists; warns (does not fail) about any the registry lacks."""
    with Platform(platform_url, token, retry) as platform:
        names = platform.resources()
    unknown = [name for name in names if name not in BY_NAME]
    if unknown:
        log.warning("the platform lists resources the registry lacks, not extracted: %s "
                    "(add them to creditplus.resources to extract them)", ", ".join(unknown))
    return names


_DONE = object()


class _Ahead(threading.Thread):
    """Runs the iterator ``source`` in a thread, up to ``QUEUE_PAGES`` items ahead of the
    consumer; the source's exception is re-raised to the consumer. ``seconds``: time spent
    inside the source."""

    def __init__(self, source: Iterator, name: str):
        super().__init__(name=name, daemon=True)
        self.source, self.queue = source, queue.Queue(QUEUE_PAGES)
        self.stop = threading.Event()
        self.count, self.seconds = 0, 0.0

    def _put(self, item: object) -> bool:
        while not self.stop.is_set():
            try:
                self.queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run(self) -> None:
        try:
            while True:
                began = time.perf_counter()
                item = next(self.source, _DONE)
                self.seconds += time.perf_counter() - began
                if item is _DONE or not self._put(item):
                    break
                self.count += 1
            self._put(_DONE)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            self._put(exc)

    def __iter__(self) -> Iterator:
        while True:
            try:
                item = self.queue.get(timeout=0.1)
            except queue.Empty:
                if self.is_alive() or not self.queue.empty():
                    continue
                return  # halted
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


def _halt(*threads: _Ahead) -> None:
    """Stop every thread (the consumer failed), then wait for those that run."""
    for thread in threads:
        thread.stop.set()
    for thread in threads:
        if thread.is_alive():
            thread.join()


def _window_then_late_band(platform: Platform, resource: str, start: dt.datetime | None, end: dt.datetime,
                           page_size: int) -> Iterator[tuple[bool, list, bytes]]:
    """(late, items, body) of the window's pages, then of its last ``REPLICATION_LAG`` once more: the
    platform may hold a version of those hours back from the first request and serves it on any later one,
    so night D archives it itself (its grades include it) instead of leaving it to the next night's look-back."""
    for items, body in platform.pages(resource, start, end, page_size):
        yield False, items, body
    band = end - REPLICATION_LAG if start is None else max(start, end - REPLICATION_LAG)
    for items, body in platform.pages(resource, band, end, page_size):
        yield True, items, body


def _begin_run(audit: psycopg.Connection, resource: str, evaluation_date: dt.date,
               start: dt.datetime | None, end: dt.datetime) -> tuple[str, int]:
    attempt = audit.execute(
        "select coalesce(max(attempt), 0) + 1 from audit.load_runs where resource = %s and evaluation_date = %s",
        (resource, evaluation_date)).fetchone()[0]
    load_id = f"{evaluation_date.isoformat()}/{resource}/{attempt}"
    audit.execute(
        "insert into audit.load_runs (load_id, resource, evaluation_date, attempt, window_start, window_end, started_at)"
        " values (%s, %s, %s, %s, %s, %s, now())", (load_id, resource, evaluation_date, attempt, start, end))
    return load_id, attempt


_FINISH_RUN = (
    "update audit.load_runs set status = %(status)s, finished_at = clock_timestamp(), fetched = %(fetched)s,"
    " archived = %(archived)s, duplicates = %(duplicates)s, quarantined = %(quarantined)s, late = %(late)s,"
    " pages = %(pages)s,"
    " retries = %(retries)s, fetch_seconds = %(fetch_seconds)s, load_seconds = %(load_seconds)s,"
    " wall_seconds = %(wall_seconds)s, error = %(error)s where load_id = %(load_id)s")


def extract_resource(resource: str, evaluation_date: dt.date, *, warehouse_url: str, platform_url: str, token: str,
                     lookback: dt.timedelta = DEFAULT_LOOKBACK, retry: Retry = Retry(),
                     page_size: int = PAGE_SIZE) -> dict:
    """Extract and archive ``resource`` for evaluation date D; return the run's row as a
    JSON-ready dict (``load_id``, ``resource``, ``evaluation_date``, ``attempt``, ``status``,
    ``window_start``/``window_end`` as ISO text at +08:00, the four load counts, ``pages``,
    ``retries``, ``fetch_seconds``, ``load_seconds``, ``wall_seconds``, ``error``). Raises
    ``ExtractError`` (after recording the failed run) when the platform stays down past the retries.
    A platform asking to wait longer than ``retry.max_backoff`` ends the attempt; the wait is slept here,
    with no connection open, and a new attempt follows (``retry.attempts`` attempts in all)."""
    registry_entry(resource)
    if lookback < REPLICATION_LAG:
        raise ValueError(f"lookback {lookback} is shorter than the platform's {REPLICATION_LAG} replication lag; "
                         "late versions would be lost: use at least 6 hours (default 1 day)")
    if reason := config.not_yet(evaluation_date):
        raise ExtractError(f"{resource}: {reason}; nothing is extracted and the watermark stays")
    for attempt in itertools.count(1):
        try:
            return _attempt(resource, evaluation_date, warehouse_url, platform_url, token, lookback, retry, page_size)
        except PlatformAskedToWait as exc:
            if attempt >= retry.attempts:
                raise ExtractError(f"{exc}; each of {attempt} attempts (Retry.attempts) was asked to wait, nothing "
                                   "was archived and the watermark stays: run again later") from exc
            log.warning("%s; waiting %g s with no transaction or lock held, then attempt %d of %d",
                        exc, exc.seconds, attempt + 1, retry.attempts)
            time.sleep(exc.seconds)


def _attempt(resource: str, evaluation_date: dt.date, warehouse_url: str, platform_url: str, token: str,
             lookback: dt.timedelta, retry: Retry, page_size: int) -> dict:
    """One attempt of ``extract_resource``: one ``audit.load_runs`` row, one transaction."""
    began = time.perf_counter()
    end = config.cutoff(evaluation_date)
    with warehouse.connect(warehouse_url, autocommit=True) as audit, warehouse.connect(warehouse_url) as conn:
        # One extraction per resource at a time; held until the data commits.
        conn.execute("select pg_advisory_xact_lock(hashtext('creditplus.extract'), hashtext(%s))", (resource,))
        row = conn.execute("select high_water from audit.watermarks where resource = %s", (resource,)).fetchone()
        high_water = row[0] if row else None
        start = None if high_water is None else high_water - lookback
        load_id, attempt = _begin_run(audit, resource, evaluation_date, start, end)
        run = {"load_id": load_id, "resource": resource, "evaluation_date": evaluation_date.isoformat(),
               "attempt": attempt, "window_start": None if start is None else _ts(start), "window_end": _ts(end),
               **empty_counts(), "late": 0, "pages": 0, "retries": 0, "fetch_seconds": 0.0, "load_seconds": 0.0,
               "error": None}
        with Platform(platform_url, token, retry, wait_outside=True) as platform:
            # Three stages overlap: paging (thread), validation (thread), COPY (here, waiting on PostgreSQL).
            pages = _Ahead(_window_then_late_band(platform, resource, start, end, page_size), f"fetch-{resource}")
            batches = _Ahead(((late, classify_items(resource, items, body)) for late, items, body in pages),
                             f"validate-{resource}")
            try:
                if start is None or start < end:  # else a backfill whose window is already covered
                    pages.start()
                    batches.start()
                    for late, batch in batches:
                        loaded = time.perf_counter()
                        counts = write_batch(conn, batch, load_id)
                        add_counts(run, counts)
                        run["late"] += counts["archived"] if late else 0
                        run["load_seconds"] += time.perf_counter() - loaded
                conn.execute(
                    "insert into audit.watermarks (resource, high_water) values (%s, %s) on conflict (resource) do update"
                    " set high_water = greatest(watermarks.high_water, excluded.high_water), updated_at = now()",
                    (resource, end))
                run.update(status="succeeded", pages=pages.count, retries=platform.retries,
                           fetch_seconds=pages.seconds, wall_seconds=time.perf_counter() - began)
                conn.execute(_FINISH_RUN, run)
                conn.commit()
            except BaseException as exc:
                _halt(pages, batches)
                conn.rollback()  # also releases the advisory lock
                waits = isinstance(exc, PlatformAskedToWait)
                run.update(empty_counts(), late=0, status="failed", pages=pages.count, retries=platform.retries,
                           fetch_seconds=pages.seconds, wall_seconds=time.perf_counter() - began,
                           error=f"{exc}; the transaction and lock were released before any wait" if waits else str(exc))
                audit.execute(_FINISH_RUN, run)
                if isinstance(exc, ExtractError) and not waits:
                    raise ExtractError(f"{exc}; nothing of {load_id} was archived and the watermark stays "
                                       f"{_ts(high_water)}: the next run resumes from it") from exc
                raise
    log.info("%s: %s versions fetched in %s pages (%s retries): %s archived, %s duplicates, %s quarantined; %.1f s",
             load_id, run["fetched"], run["pages"], run["retries"], run["archived"], run["duplicates"],
             run["quarantined"], run["wall_seconds"])
    return run


def extract_all(evaluation_date: dt.date, *, warehouse_url: str, platform_url: str, token: str,
                workers: int = 2, **options) -> dict[str, dict]:
    """``extract_resource`` for every registry resource, ``workers`` resources at a time
    (each its own transaction; two keep both PostgreSQL and the fetch busy on two cores),
    ``options`` passed on. Returns the runs by resource. A failing resource does not stop
    the others; one ``ExtractError`` at the end names every failure."""
    list_resources(platform_url, token, options.get("retry", Retry()))

    def extract(name: str) -> dict | ExtractError:
        try:
            return extract_resource(name, evaluation_date, warehouse_url=warehouse_url, platform_url=platform_url,
                                    token=token, **options)
        except ExtractError as exc:
            return exc

    with ThreadPoolExecutor(workers, thread_name_prefix="extract") as pool:
        outcomes = dict(zip((r.name for r in RESOURCES), pool.map(extract, (r.name for r in RESOURCES))))
    failures = [str(o) for o in outcomes.values() if isinstance(o, ExtractError)]
    if failures:
        raise ExtractError(f"{len(failures)} of {len(RESOURCES)} resources failed for {evaluation_date}: "
                           + " | ".join(failures))
    return outcomes
