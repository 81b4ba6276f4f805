"""``creditplus nightly`` end to end: the real CLI runs the credit_nightly DAG with
``airflow dags test`` against the simulator serving an acceptance dataset, into a fresh
database; then again for the same date."""
from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

from creditplus import config
from creditplus.platform.server import running
from creditplus.resources import RESOURCES

CASE = config.PROJECT_ROOT.parent / "shared/acceptance/cases/basic-2026-11-26"
DAY = "2026-11-26"
NEXT_DAY = "2026-11-27"
CLI = str(Path(sys.executable).with_name("creditplus"))


def nightly(env: dict[str, str], day: str = DAY) -> subprocess.CompletedProcess:
    return subprocess.run([CLI, "nightly", "--date", day], env=env, capture_output=True, text=True, timeout=1800)


def raw_rows(url: str) -> int:
    with psycopg.connect(url) as conn:
        return sum(conn.execute(f"select count(*) from raw.{r.name}").fetchone()[0] for r in RESOURCES)


@pytest.fixture(scope="module")
def home(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("creditplus-home")


@pytest.fixture(scope="module")
def platform():
    with running(CASE / "dataset", token="nightly-test-token") as url:
        yield url, "nightly-test-token"


def _env(home: Path, warehouse_url: str, platform_url: str, token: str) -> dict[str, str]:
    return {**os.environ, "CREDITPLUS_HOME": str(home), "CREDITPLUS_WAREHOUSE_URL": warehouse_url,
            "CREDITPLUS_PLATFORM_URL": platform_url, "CREDITPLUS_PLATFORM_TOKEN": token}


@pytest.mark.slow
def test_nightly_grades_publishes_reruns_and_a_broken_feed_keeps_the_publication(make_database, home, platform,
                                                                                  tmp_path):
    url = make_database("cp_nightly")
    env = _env(home, url, *platform)

    first = nightly(env)
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
    assert failed.returncode != 0
    assert "check_feed" in failed.stdout + failed.stderr
    with psycopg.connect(url) as conn:  # the gate held: every channel still shows night D
        assert conn.execute("select publication_id from audit.publications where is_current").fetchone() == published
        assert conn.execute("select distinct evaluation_date::text from gov_share.enterprise_evaluation").fetchall() == [(DAY,)]
        # every enterprise of the night refused: far beyond quarantine_critical_rate
        assert conn.execute("select expectation from audit.quality_results where evaluation_date = %s"
                            " and suite = 'feed' and not success and severity = 'critical'", (NEXT_DAY,)).fetchall() == [
            ("quarantine_rate_excessive",)]


def test_an_unreachable_platform_is_one_clear_line(make_database, home, tmp_path):
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = nightly(_env(home, make_database("cp_nightly"), f"http://127.0.0.1:{port}", "t"))
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"the credit platform at http://127.0.0.1:{port} is unreachable" in result.stderr


def test_a_wrong_token_is_one_clear_line(make_database, home, platform):
    result = nightly(_env(home, make_database("cp_nightly"), platform[0], "wrong-token"))
    assert result.returncode == 2
    assert "refused the token" in result.stderr and "Traceback" not in result.stderr


def test_task_errors_names_each_failed_task_with_its_raised_exception(tmp_path):
    """The parser reads the shape of real ``airflow dags test`` output (tasks in sequence,
    a traceback under the task that failed, chained exceptions: the raised one wins)."""
    from creditplus import nightly

    output = tmp_path / "dags-test.log"
    output.write_text("""\
2026-11-27T12:56:55.346077Z [info     ] [DAG TEST] starting task_id=extract map_index=0 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-11-27T12:56:55.436688Z [error    ] Task failed with exception     [task] loc=task_runner.py:1676
Traceback (most recent call last):
  File "/work/main/src/creditplus/extract.py", line 120, in get
    response.raise_for_status()
httpx.HTTPStatusError: Server error '503 Service Unavailable'
DETAIL:  a second line of the message

The above exception was the direct cause of the following exception:

Traceback (most recent call last):
  File "/work/main/src/creditplus/orchestration.py", line 70, in extract
    return extract_resource(resource, evaluation_date(logical_date, params),
creditplus.extract.ExtractError: enterprises: the platform kept answering 503 after 8 attempts
2026-11-27T12:56:55.500557Z [info     ] [DAG TEST] end task task_id=extract map_index=0 [airflow.sdk.definitions.dag] loc=dag.py:1563
2026-11-27T12:56:55.500976Z [info     ] [DAG TEST] starting task_id=extract map_index=6 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-11-27T12:56:55.600976Z [info     ] [DAG TEST] end task task_id=extract map_index=6 [airflow.sdk.definitions.dag] loc=dag.py:1563
2026-11-27T13:22:50.664436Z [info     ] [DAG TEST] starting task_id=dbt.int_caps_model_build map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-11-27T13:22:55.124560Z [error    ] Task failed with exception     [task] loc=task_runner.py:1676
Traceback (most recent call last):
ValueError: first attempt
2026-11-27T13:23:37.938739Z [info     ] [DAG TEST] starting task_id=dbt.int_caps_model_build map_index=-1 [airflow.sdk.definitions.dag] loc=dag.py:1501
2026-11-27T13:23:40.124560Z [error    ] Task failed with exception     [task] loc=task_runner.py:1676
Traceback (most recent call last):
cosmos.exceptions.CosmosDbtRunError: dbt invocation completed with errors: int_caps: Database Error
""")
    assert nightly.task_errors(output) == {
        ("extract", 0): "creditplus.extract.ExtractError: enterprises: the platform kept answering 503 after 8 attempts",
        ("dbt.int_caps_model_build", -1): "cosmos.exceptions.CosmosDbtRunError: dbt invocation completed with errors: "
                                          "int_caps: Database Error",
    }
    assert nightly.last_exception(output).startswith("cosmos.exceptions.CosmosDbtRunError")
