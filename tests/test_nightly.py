"""``creditplus nightly`` end to end: the real CLI runs the credit_nightly DAG in-process (``dag.test()``)
against the simulator serving an acceptance dataset, into a fresh database; then again for the same
date; then a broken feed, a date after today and one before the platform's first record."""
from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from creditplus.platform.server import running
from creditplus.resources import RESOURCES
from conftest import BASIC_CASE as CASE, BASIC_DAY as DAY, CLI, cli_env as _env

NEXT_DAY = "2026-11-27"


def nightly(env: dict[str, str], day: str = DAY) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "nightly", "--date", day], env=env, capture_output=True, text=True, timeout=1800)


def raw_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return sum(conn.execute(f"select count(*) from raw.{r.name}").fetchone()[0] for r in RESOURCES)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("creditplus-home")


@pytest.fixture(scope="module")
def platform(basic_platform):
    return basic_platform


@pytest.mark.slow
def test_nightly_grades_publishes_reruns_and_a_broken_feed_keeps_the_publication(in_process_night, tmp_path):
    url, env, home = in_process_night["url"], in_process_night["env"], in_process_night["home"]
    first = in_process_night["result"]
    assert first.returncode == 0, first.stdout + first.stderr
    assert f"credit_nightly {DAY}: success" in first.stdout
    archived = raw_rows(url)
    assert archived > 0
    with open(CASE / "expected" / "evaluation.csv", newline="") as f:
        expected = len(list(csv.DictReader(f)))
    with psycopg.connect(url) as conn:
        runs = dict(conn.execute("select resource, status from audit.latest_load_runs where evaluation_date = %s",
                                 (DAY,)).fetchall())
        assert runs == {r.name: "succeeded" for r in RESOURCES}
        assert conn.execute("select count(*) from audit.quarantine").fetchone()[0] > 0
        graded = conn.execute("select count(*) from marts.fct_enterprise_evaluation where evaluation_date = %s",
                              (DAY,)).fetchone()[0]
        indicators = conn.execute("select count(distinct uscc) from marts.fct_indicator_score where evaluation_date = %s",
                                  (DAY,)).fetchone()[0]
        published = conn.execute("select count(*) from gov_share.enterprise_evaluation where evaluation_date = %s",
                                 (DAY,)).fetchone()[0]
        gates = dict(conn.execute("select suite, bool_and(success or severity = 'warning') from audit.quality_results"
                                  " group by suite").fetchall())
        warned = conn.execute("select suite, expectation, observed from audit.quality_results"
                              " where evaluation_date = %s and severity = 'warning' and not success", (DAY,)).fetchall()
        current = conn.execute("select evaluation_date::text from audit.publications where is_current").fetchone()
    assert graded == expected and indicators == expected
    assert published == expected and current == (DAY,)  # validated, then published to every channel
    assert gates and all(gates.values()), gates
    assert f"graded {expected} enterprises" in first.stdout
    # the dataset refuses 13 % of its penalties on purpose: a warning, reported, and the night still publishes
    elevated = next(seen for suite, name, seen in warned if (suite, name) == ("feed", "quarantine_rate_elevated"))
    printed = first.stdout.splitlines()
    assert f"  quality warnings: {len(warned)} (published nonetheless)" in printed
    assert f"    feed.quarantine_rate_elevated observed {elevated}" in printed
    assert f"  Data Docs: {home / 'data_docs' / 'index.html'}" in printed

    again = nightly(env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert raw_rows(url) == archived
    with psycopg.connect(url) as conn:
        assert conn.execute("select max(attempt) from audit.load_runs where evaluation_date = %s", (DAY,)).fetchone()[0] == 2
        assert conn.execute("select count(*) from gov_share.enterprise_evaluation").fetchone()[0] == expected
        published = conn.execute("select publication_id from audit.publications where is_current").fetchone()

    # Night D+1 brings a broken feed: every enterprise re-sent with an invalid reg_status.
    broken = tmp_path / "broken-feed"
    shutil.copytree(CASE / "dataset", broken)
    with open(broken / "enterprises.jsonl", "a", encoding="utf-8") as out:
        for line in (CASE / "dataset" / "enterprises.jsonl").read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            if "uscc" in record:
                out.write(json.dumps({**record, "reg_status": "bankrupt", "updated_at": f"{NEXT_DAY}T09:00:00+08:00"},
                                     ensure_ascii=False) + "\n")
    with running(broken, token="broken-token") as broken_url:
        failed = nightly(_env(home, url, broken_url, "broken-token"), NEXT_DAY)
    assert failed.returncode == 1
    lines = failed.stdout.splitlines()
    assert lines[1].startswith(f"credit_nightly {NEXT_DAY}: FAILED after "), lines
    assert lines[2].startswith("  check_feed: failed check feed.quarantine_rate_excessive observed enterprises="), lines
    # the tasks that did not run because of it are one line, not a list
    assert any(line.endswith("downstream tasks not run") and line.strip()[0].isdigit() for line in lines), lines
    assert "Traceback" not in failed.stdout + failed.stderr
    page = home / "reports" / f"{NEXT_DAY}.html"  # the report task ran all the same, and says why
    assert lines[-1] == f"  report: {page}"
    assert "未发布 NOT published" in page.read_text(encoding="utf-8")
    with psycopg.connect(url) as conn:  # the gate held: every channel still shows night D
        assert conn.execute("select publication_id from audit.publications where is_current").fetchone() == published
        assert conn.execute("select distinct evaluation_date::text from gov_share.enterprise_evaluation").fetchall() == [(DAY,)]
        # every enterprise of the night refused: far beyond quarantine_critical_rate
        assert conn.execute("select expectation from audit.quality_results where evaluation_date = %s"
                            " and suite = 'feed' and not success and severity = 'critical'", (NEXT_DAY,)).fetchall() == [
            ("quarantine_rate_excessive",)]


def test_an_unreachable_platform_is_one_clear_line(make_database, home, tmp_path):
    from creditplus.warehouse import free_port

    port = free_port()
    result = nightly(_env(home, make_database("cp_nightly"), f"http://127.0.0.1:{port}", "t"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"the credit platform at http://127.0.0.1:{port} is unreachable" in result.stderr


def test_a_wrong_token_is_one_clear_line(make_database, home, platform):
    result = nightly(_env(home, make_database("cp_nightly"), platform[0], "wrong-token"))
    assert result.returncode == 2
    assert "refused the token" in result.stderr and "Traceback" not in result.stderr


def test_a_date_after_today_is_refused_in_one_line(make_database, home, platform):
    from creditplus import config

    tomorrow = dt.datetime.now(config.CST).date() + dt.timedelta(days=1)
    result = nightly(_env(home, make_database("cp_nightly"), *platform), tomorrow.isoformat())
    assert result.returncode == 2 and result.stdout.count("\n") == 0
    assert result.stderr == (f"creditplus: error: cannot grade {tomorrow}: it is after today "
                             f"({tomorrow - dt.timedelta(days=1)}, +08:00)\n")


def test_a_date_before_the_platforms_first_record_is_refused_in_one_line(make_database, home, platform):
    from creditplus import orchestration

    first = orchestration.platform_first_record(*platform)
    assert first is not None and first < dt.date(2026, 11, 26)
    day = (first - dt.timedelta(days=1)).isoformat()
    result = nightly(_env(home, make_database("cp_nightly"), *platform), day)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr == f"creditplus: error: cannot grade {day}: it is before the platform's first record ({first})\n"


def _shared(root: Path) -> list[str]:
    """Files under ``root`` that another local user could read, and directories they could list."""
    return [f"{oct(p.stat().st_mode)[-3:]} {p}" for p in [root, *root.rglob("*")]
            if not p.is_symlink() and p.stat().st_mode & 0o077]


def test_what_a_night_writes_is_readable_by_its_owner_only(in_process_night):
    """Airflow's metadata database (connections), its logs, Data Docs: 0600 files in 0700 folders."""
    home = in_process_night["home"]
    assert (home / "airflow" / "airflow.db").exists() and list((home / "airflow" / "logs").rglob("*.log"))
    assert _shared(home) == []


def test_a_generated_dataset_is_readable_by_its_owner_only(tmp_path):
    """Its people records carry resident IDs."""
    out = tmp_path / "city"
    result = subprocess.run([CLI, "platform", "generate", "--out", str(out), "--enterprises", "5"], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert (out / "dishonest_debtors.jsonl").exists() and _shared(out) == []
