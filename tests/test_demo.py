"""``creditplus demo`` on embedded defaults, end to end: a small city is generated (once),
served, graded through Airflow into the embedded PostgreSQL, and reported."""
from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import psycopg
import pytest

from creditplus import config, portal, warehouse
from creditplus.platform.generator import VERSION as GENERATOR_VERSION

CLI = str(Path(sys.executable).with_name("creditplus"))


@pytest.fixture
def demo_home():
    """A CREDITPLUS_HOME the embedded server's own system user can enter (pytest's tmp_path is 0700)."""
    home = Path(tempfile.mkdtemp(prefix="creditplus-demo-test-"))
    home.chmod(0o755)
    yield home
    shutil.rmtree(home, ignore_errors=True)


@pytest.mark.slow
def test_demo_grades_yesterday_on_embedded_defaults(demo_home):
    env = {k: v for k, v in os.environ.items() if not k.startswith("CREDITPLUS_")}
    env["CREDITPLUS_HOME"] = str(demo_home)
    try:
        result = subprocess.run([CLI, "demo", "--enterprises", "40"], env=env, capture_output=True, text=True,
                                timeout=1800)
        assert result.returncode == 0, result.stdout + result.stderr
        yesterday = dt.datetime.now(config.CST).date() - dt.timedelta(days=1)
        out = result.stdout
        assert f"credit_nightly {yesterday}: success" in out
        assert "demo: generated" in out and "the simulator is stopped" in out
        datasets = list((demo_home / "demo").iterdir())
        assert [d.name for d in datasets] == [f"city-40e-seed42-5y-{yesterday}-v{GENERATOR_VERSION}"]

        url = next(line.split()[1] for line in out.splitlines() if line.strip().startswith("warehouse:"))
        assert url.endswith("/creditplus_demo") and "127.0.0.1" in url
        with psycopg.connect(url) as conn:
            graded = conn.execute("select count(*) from marts.fct_enterprise_evaluation").fetchone()[0]
            archived = conn.execute("select sum(archived) from audit.load_runs").fetchone()[0]
        assert 0 < graded <= 40 and archived > 0
        assert f"graded {graded} enterprises" in out
        # it ends by saying where to look: the night's report, Data Docs, and how to serve the portal on this warehouse
        page, docs = demo_home / "reports" / f"{yesterday}.html", demo_home / "data_docs" / "index.html"
        assert f"  report: {page}" in out.splitlines() and page.exists() and docs.exists()
        last = out.splitlines()[-5:]
        assert last[:3] == ["demo: where to look", f"  report:    {page}", f"  Data Docs: {docs}"], last
        assert last[3].startswith(f"  portal:    CREDITPLUS_WAREHOUSE_URL={url} ") and " portal serve " in last[3]
        assert last[3].endswith("# then open http://127.0.0.1:8700/")
        uscc, credential = re.fullmatch(r"  sign in:   (\S+) with credential (\S+) +# issued for the demo, valid 1 day",
                                        last[4]).groups()
        with warehouse.connect(url) as conn:
            assert portal.enter(conn, credential) == uscc
    finally:
        subprocess.run([sys.executable, "-c", "from creditplus import warehouse; warehouse.stop_embedded()"],
                       env=env, check=True)


def test_the_dataset_is_generated_once_per_arguments(tmp_path, monkeypatch, capsys):
    from creditplus import demo

    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path))
    day = dt.date(2026, 11, 26)
    first = demo.dataset(3, day)
    assert (first / "enterprises.jsonl").stat().st_size > 0
    stamp = (first / "enterprises.jsonl").stat().st_mtime_ns
    assert demo.dataset(3, day) == first and (first / "enterprises.jsonl").stat().st_mtime_ns == stamp
    assert demo.dataset(4, day) != first and demo.dataset(3, day + dt.timedelta(days=1)) != first
    assert "reusing" in capsys.readouterr().out
    assert not list((tmp_path / "demo").glob("*.partial"))
