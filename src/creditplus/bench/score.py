"""``creditplus bench score --enterprises N``: dbt build time of one evaluation date against its floor,
and the quality gates' time against the build.

The generated dataset (cached, shared with ``bench extract``) ends on day D2; it is archived into a
scratch database as two nights' loads, each with the ``audit.load_runs`` rows extraction writes:
night 1 (D2 - 1) holds every version known before its cutoff, night 2 (D2) the one day of changes
after it. On the same warehouse:

* floor: decoding every record of night 1 once (``sum(octet_length(record::text))`` over each raw table);
* dbt's parse of the project for the scratch warehouse, before night 1 and not in its build (every night
  after a warehouse's first reuses it);
* each night, after what the day before it does (vacuum, analyze, checkpoint; untimed): the feed gate,
  ``dbt build`` (seeds, models, data tests; the unit tests run in the test suite), the marts gate and the
  publication, as ``credit_nightly`` runs them (the history tables grow only by what changed; night 2's
  grade movement is measured against night 1's publication);
* row counts of the archive, the marts and the history.

Its stages are shown as they run (``bench.progress``); the figures come last, on stdout.
"""
from __future__ import annotations

import datetime as dt
import re
import time
from pathlib import Path

import psycopg
from psycopg import sql

from creditplus import config, dbt_runner, load, publish, quality, warehouse
from creditplus.bench.extract import END_DATE, cached_dataset, scratch_database
from creditplus.bench.progress import Stages
from creditplus.resources import RESOURCES

TARGET_RATIO = 8.0
TARGET_GATE_SHARE = 0.25  # all quality suites of a night / its dbt build
UPDATED_AT = re.compile(rb'"updated_at": *"([^"]+)"')
COUNTED = ("marts.fct_enterprise_evaluation", "marts.fct_indicator_score", "marts.fct_unscorable_records",
           "marts.evaluation_history", "marts.indicator_history")


def _timed(fn, *args, **kwargs) -> float:
    start = time.perf_counter()
    fn(*args, **kwargs)
    return time.perf_counter() - start


def decode_floor(url: str) -> tuple[float, int]:
    """Seconds to decode every archived record once, and the bytes decoded."""
    with warehouse.connect(url) as conn:
        start = time.perf_counter()
        total = sum(conn.execute(sql.SQL("select coalesce(sum(octet_length(record::text)), 0) from raw.{}")
                                 .format(sql.Identifier(r.name))).fetchone()[0] for r in RESOURCES)
        return time.perf_counter() - start, int(total)


def counts(url: str, relations) -> dict[str, int]:
    with warehouse.connect(url) as conn:
        return {rel: conn.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(*rel.split(".")))).fetchone()[0]
                for rel in relations}


def _updated_at(line: bytes) -> dt.datetime | None:
    match = UPDATED_AT.search(line)
    try:
        return dt.datetime.fromisoformat(match.group(1).decode()) if match else None
    except ValueError:
        return None


def _in_window(at: dt.datetime | None, since: dt.datetime | None, end: dt.datetime) -> bool:
    if at is None:
        return since is None
    return (since is None or at >= since) and at < end


def archive_night(url: str, dataset: Path, day: dt.date, since: dt.datetime | None) -> float:
    """Archive the versions updated in [since, cutoff(D)) as night D's loads, one succeeded
    ``audit.load_runs`` row per resource (a line without a readable ``updated_at`` goes to the
    first night, whose load refuses it with its reason); seconds taken."""
    end = config.cutoff(day)
    start = time.perf_counter()
    with warehouse.connect(url) as conn:
        for res in RESOURCES:
            path = dataset / f"{res.name}.jsonl"
            lines = path.read_bytes().splitlines() if path.exists() else []
            night = [line for line in lines if _in_window(_updated_at(line), since, end)]
            load_id = f"{day.isoformat()}/{res.name}/1"
            counts = load.load_lines(conn, res.name, night, load_id)
            conn.execute(
                "insert into audit.load_runs (load_id, resource, evaluation_date, attempt, window_start, window_end,"
                " started_at, finished_at, status, fetched, archived, duplicates, quarantined)"
                " values (%(load_id)s, %(resource)s, %(day)s, 1, %(since)s, %(end)s, now(), clock_timestamp(),"
                " 'succeeded', %(fetched)s, %(archived)s, %(duplicates)s, %(quarantined)s)",
                {"load_id": load_id, "resource": res.name, "day": day, "since": since, "end": end, **counts})
        conn.commit()
    return time.perf_counter() - start


def gate(check, day: dt.date, url: str) -> quality.GateResult:
    """A quality gate's result, passed or not (the bench reports it either way)."""
    try:
        return check(day, warehouse_url=url, run_id=f"bench-{check.__name__}-{day}")
    except quality.QualityGateError as failed:
        return failed.result


def settle(url: str) -> None:
    """What the day between two nights does: vacuum and statistics of what the last night wrote, and its
    dirty pages written out (back to back, night 2 would pay night 1's autovacuum and checkpoint)."""
    with warehouse.connect(url, autocommit=True) as conn:
        conn.execute("vacuum analyze")
        try:
            conn.execute("checkpoint")
        except psycopg.errors.InsufficientPrivilege:
            pass  # a warehouse role without pg_checkpoint: the server's own checkpoints will do


NIGHT_STAGES = 4  # stages of night(): two gates, the build, the publication


def night(url: str, day: dt.date, stage: Stages, n: int) -> dict:
    """The feed gate, the dbt build, the marts gate (its grade movement measured against the previous
    night's publication) and the publication of night D, timed."""
    stage(f"night {n} ({day}): feed gate")
    feed = gate(quality.check_feed, day, url)
    stage(f"night {n} ({day}): dbt build")
    build = _timed(dbt_runner.build, day, warehouse_url=url)
    stage(f"night {n} ({day}): marts gate")
    marts = gate(quality.check_marts, day, url)
    stage(f"night {n} ({day}): publication")
    published = _timed(publish.publish, day, warehouse_url=url, run_id=f"bench-{day}") if marts.passed else None
    return {"day": day, "build": build, "gates": (feed, marts), "published": published, "rows": counts(url, COUNTED)}


def print_night(n: int, result: dict) -> None:
    """The night's figures; the suites' share leaves out GX's import, paid once per process whatever the data."""
    gates_s = sum(g.timings["total"] - g.timings["load"] for g in result["gates"])
    share = gates_s / result["build"]
    print(f"  night {n} ({result['day']}): dbt build {result['build']:8.2f} s")
    for g in result["gates"]:
        t = g.timings
        print(f"    quality gate {g.gate:5} {t['total'] - t['load']:7.2f} s (SQL {t['measure']:.1f}, GX validate + "
              f"Data Docs {t['validate']:.1f}; GX import {t['load']:.1f} more): {len(g.failures)} critical "
              f"failure(s), {len(g.warnings)} warning(s)")
    print(f"    all suites {gates_s:7.2f} s = {share:.0%} of the dbt build "
          f"({'within' if share <= TARGET_GATE_SHARE else 'ABOVE'} the {TARGET_GATE_SHARE:.0%} target)")
    published = f"{result['published']:.2f} s" if result["published"] is not None else "not published (gate failed)"
    print(f"    publication {published}")


def main(args) -> int:
    day1, day2 = END_DATE - dt.timedelta(days=1), END_DATE
    with Stages("bench score", 7 + 2 * NIGHT_STAGES) as stage:
        dataset = cached_dataset(args.enterprises, stage)
        stage("a scratch warehouse")
        with scratch_database() as url:
            stage(f"night 1 ({day1}): archiving every version known before its cutoff")
            archive_s = archive_night(url, dataset, day1, None)
            stage("vacuum, analyze and checkpoint")
            settle(url)
            raw = counts(url, [f"raw.{r.name}" for r in RESOURCES])
            stage("floor: decoding every archived record once")
            floor_s, decoded = decode_floor(url)
            stage("dbt parse of the project")
            parse_s = dbt_runner.warm_parse(url)
            night1 = night(url, day1, stage, 1)
            stage(f"night 2 ({day2}): archiving the day's changes")
            archive2_s = archive_night(url, dataset, day2, config.cutoff(day1))
            stage("vacuum, analyze and checkpoint")
            settle(url)
            raw2 = counts(url, [f"raw.{r.name}" for r in RESOURCES])
            night2 = night(url, day2, stage, 2)
    ratio = night1["build"] / floor_s if floor_s else float("inf")
    print(f"bench score: {args.enterprises} enterprises; night 1: {sum(raw.values())} archived record versions "
          f"({decoded / 1e6:.0f} MB of JSON) in {archive_s:.1f} s; night 2: {sum(raw2.values()) - sum(raw.values())} "
          f"more in {archive2_s:.1f} s")
    print(f"  floor (decode every record once)   {floor_s:8.2f} s")
    print(f"  dbt parse of the project           {parse_s:8.2f} s (once for a new warehouse; nights reuse it)")
    print(f"  dbt build / floor, night 1: ratio {ratio:.1f}x ({'within' if ratio <= TARGET_RATIO else 'ABOVE'} "
          f"the {TARGET_RATIO:.0f}x target); night 2 / night 1: {night2['build'] / night1['build']:.2f}")
    print_night(1, night1)
    print_night(2, night2)
    for rel in COUNTED:
        print(f"  {rel:34} {night1['rows'][rel]:>10} rows after night 1, {night2['rows'][rel]:>10} after night 2")
    return 0
