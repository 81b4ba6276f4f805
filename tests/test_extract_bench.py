"""``creditplus bench extract`` and ``bench score`` end to end on a tiny city: figures printed, nothing left behind."""
from __future__ import annotations

import argparse
import re

import psycopg

from creditplus.bench import extract as bench
from creditplus.bench import score
from creditplus.platform.generator import VERSION


def bench_databases(pg_server: str) -> int:
    with psycopg.connect(f"{pg_server}/postgres") as conn:
        return conn.execute("select count(*) from pg_database where datname like 'creditplus_bench_%'").fetchone()[0]


def test_bench_prints_every_figure_and_drops_its_database(warehouse_url, pg_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path))
    before = bench_databases(pg_server)
    assert bench.main(argparse.Namespace(enterprises=40)) == 0
    out = capsys.readouterr().out
    figures = {label: int(n.replace(",", "")) for label, n in re.findall(r"^(extract-and-load|floor \(a\)|floor \(b\))"
                                                                       r".*?([\d,]+) records", out, re.M)}
    assert len(figures) == 3 and len(set(figures.values())) == 1 and figures["floor (a)"] > 500, out
    assert re.search(r"ratio extract-and-load / floor \(a\): \d+\.\d\d", out)
    assert (tmp_path / "bench" / f"dataset-40-seed{bench.SEED}-{bench.END_DATE}-v{VERSION}" / "enterprises.jsonl").exists()
    assert bench_databases(pg_server) == before


def test_score_bench_prints_two_nights_with_their_gates(warehouse_url, pg_server, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path))
    before = bench_databases(pg_server)
    assert score.main(argparse.Namespace(enterprises=40)) == 0
    out = capsys.readouterr().out
    assert re.search(r"dbt build / floor, night 1: ratio \d+\.\dx .*; night 2 / night 1: \d\.\d\d", out), out
    for night in (1, 2):
        assert re.search(rf"night {night} \(\d{{4}}-\d\d-\d\d\): dbt build +\d+\.\d\d s", out), out
    gates = re.findall(r"quality gate (feed|marts) .*: 0 critical failure\(s\)", out)
    assert gates == ["feed", "marts"] * 2, out  # both nights pass both gates
    assert len(re.findall(r"all suites +\d+\.\d\d s = \d+% of the dbt build", out)) == 2, out
    assert len(re.findall(r"publication \d+\.\d\d s", out)) == 2, out
    assert bench_databases(pg_server) == before
