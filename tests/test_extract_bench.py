"""``creditplus bench extract`` end to end on a tiny city: figures printed, nothing left behind."""
from __future__ import annotations

import argparse
import re

import psycopg

from creditplus.bench import extract as bench


def test_bench_prints_every_figure_and_drops_its_database(warehouse_url, pg_server, tmp_path, monkeypatch, capsys):
    def bench_databases() -> int:
        with psycopg.connect(f"{pg_server}/postgres") as conn:
            return conn.execute("select count(*) from pg_database where datname like 'creditplus_bench_%'").fetchone()[0]

    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path))
    before = bench_databases()
    assert bench.main(argparse.Namespace(enterprises=40)) == 0
    out = capsys.readouterr().out
    figures = {label: int(n.replace(",", "")) for label, n in re.findall(r"^(extract-and-load|floor \(a\)|floor \(b\))"
                                                                       r".*?([\d,]+) records", out, re.M)}
    assert len(figures) == 3 and len(set(figures.values())) == 1 and figures["floor (a)"] > 500, out
    assert re.search(r"ratio extract-and-load / floor \(a\): \d+\.\d\d", out)
    assert (tmp_path / "bench" / f"dataset-40-seed{bench.SEED}-{bench.END_DATE}" / "enterprises.jsonl").exists()
    assert bench_databases() == before
