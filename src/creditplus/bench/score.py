"""``creditplus bench score --enterprises N``: dbt build time of one evaluation date against its floor.

The generated dataset (cached, shared with ``bench extract``) is archived into a scratch database;
then, on the same warehouse:

* floor: decoding every archived record once (``sum(octet_length(record::text))`` over each raw table);
* night 1: ``dbt build`` (seeds, models, data tests; the unit tests run in the test suite) of the dataset's last day D;
* night 2: ``dbt build`` of D+1 on the same archive (the history tables grow only by what changed);
* row counts of the archive, the marts and the history.
"""
from __future__ import annotations

import datetime as dt
import time

from psycopg import sql

from creditplus import dbt_runner, load, warehouse
from creditplus.bench.extract import END_DATE, cached_dataset, scratch_database
from creditplus.resources import RESOURCES

TARGET_RATIO = 8.0
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


def main(args) -> int:
    dataset = cached_dataset(args.enterprises)
    night1, night2 = END_DATE, END_DATE + dt.timedelta(days=1)
    with scratch_database() as url:
        with warehouse.connect(url) as conn:
            warehouse.setup(conn)
            start = time.perf_counter()
            load.archive_dataset_dir(conn, dataset, "bench-score")
            archive_s = time.perf_counter() - start
        with warehouse.connect(url, autocommit=True) as conn:
            conn.execute("vacuum analyze")
        raw = counts(url, [f"raw.{r.name}" for r in RESOURCES])
        floor_s, decoded = decode_floor(url)
        build1 = _timed(dbt_runner.build, night1, warehouse_url=url)
        after1 = counts(url, COUNTED)
        build2 = _timed(dbt_runner.build, night2, warehouse_url=url)
        after2 = counts(url, COUNTED)
    ratio = build1 / floor_s if floor_s else float("inf")
    print(f"bench score: {args.enterprises} enterprises, {sum(raw.values())} archived record versions "
          f"({decoded / 1e6:.0f} MB of JSON), archived in {archive_s:.1f} s")
    print(f"  floor (decode every record once)   {floor_s:8.2f} s")
    print(f"  dbt build, night {night1}      {build1:8.2f} s   ratio {ratio:.1f}x "
          f"({'within' if ratio <= TARGET_RATIO else 'ABOVE'} the {TARGET_RATIO:.0f}x target)")
    print(f"  dbt build, night {night2}      {build2:8.2f} s")
    for rel in COUNTED:
        print(f"  {rel:34} {after1[rel]:>10} rows after night 1, {after2[rel]:>10} after night 2")
    return 0
