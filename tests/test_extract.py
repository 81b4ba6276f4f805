"""creditplus.extract against the platform simulator over loopback HTTP and a real PostgreSQL.

The expected archive and quarantine are computed here from the dataset files alone
(``dataset_versions``); ``validation.refusal`` is the contract's validator, used as the
oracle of which record versions are valid.
"""
from __future__ import annotations

import datetime as dt
import json
import math
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from creditplus import config, extract, warehouse
from creditplus.extract import ExtractError, Retry, extract_all, extract_resource, list_resources
from creditplus.platform.server import running
from creditplus.resources import RESOURCES
from conftest import BASIC_CASE
from creditplus.validation import parse_timestamp, refusal

ACCEPTANCE_DATASET = BASIC_CASE / "dataset"
D1 = dt.date(2026, 11, 26)
D2 = D1 + dt.timedelta(days=1)
FAST = Retry(attempts=8, backoff=0.01, max_backoff=0.1)

Version = tuple[tuple[str, ...], dt.datetime]  # key values as text, updated_at instant


@pytest.fixture(scope="session")
def dataset() -> Path:
    return ACCEPTANCE_DATASET


def canonical(record: object) -> str:
    return json.dumps(record, sort_keys=True, ensure_ascii=False)


def dataset_versions(dataset_dir: Path, before: dt.datetime) -> tuple[dict[str, set[Version]], dict[str, dict[str, str]]]:
    """From the files: valid versions, and refused records (canonical text → reason), of
    every line the platform can serve (a JSON object with a parseable ``updated_at``) before ``before``."""
    valid: dict[str, set[Version]] = defaultdict(set)
    refused: dict[str, dict[str, str]] = defaultdict(dict)
    for res in RESOURCES:
        path = dataset_dir / f"{res.name}.jsonl"
        for line in path.read_text(encoding="utf-8").splitlines() if path.exists() else ():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            instant = parse_timestamp(record.get("updated_at")) if isinstance(record, dict) else None
            if instant is None or instant >= before:
                continue
            reason = refusal(res.name, record)
            if reason:
                refused[res.name][canonical(record)] = reason
            else:
                valid[res.name].add((tuple(str(record[k]) for k in res.key), instant))
    return valid, refused


def archived_versions(conn) -> dict[str, list[Version]]:
    """Every archived version, as a list so that a version archived twice would show."""
    return {res.name: [(tuple(row[:-1]), row[-1]) for row in conn.execute(
        "select {}, updated_at from raw.{}".format(", ".join(res.key), res.name)).fetchall()]
        for res in RESOURCES}


def quarantined(conn) -> dict[str, dict[str, str]]:
    found: dict[str, dict[str, str]] = defaultdict(dict)
    for resource, original, reason in conn.execute("select resource, original, reason from audit.quarantine"):
        found[resource][canonical(json.loads(original))] = reason
    return found


def run_night(day: dt.date, url: str, warehouse_url: str, **options) -> dict[str, dict]:
    return extract_all(day, warehouse_url=warehouse_url, platform_url=url, token="test-token", **options)


def test_one_night_archives_every_valid_version_and_counts_it(dataset, warehouse_url):
    valid, refused = dataset_versions(dataset, config.cutoff(D1))
    with running(dataset) as url:
        runs = run_night(D1, url, warehouse_url, retry=FAST, page_size=1000)
    with warehouse.connect(warehouse_url) as conn:
        archive = archived_versions(conn)
        rows = {r[0]: r[1:] for r in conn.execute(
            "select resource, load_id, attempt, status, fetched, archived, duplicates, quarantined, pages, window_start,"
            " window_end from audit.load_runs")}
    for res in RESOURCES:
        assert sorted(archive[res.name]) == sorted(valid[res.name]), res.name
        run = runs[res.name]
        assert (run["archived"], run["quarantined"]) == (len(valid[res.name]), len(refused[res.name])), res.name
        assert run["fetched"] == run["archived"] + run["duplicates"] + run["quarantined"]
        # the window's pages, then one (or more) of its last 6 hours asked for again
        assert max(1, math.ceil(run["fetched"] / 1000)) + 1 <= run["pages"] <= math.ceil(run["fetched"] / 1000) + 2
        assert rows[res.name] == (f"{D1}/{res.name}/1", 1, "succeeded", run["fetched"], run["archived"],
                                  run["duplicates"], run["quarantined"], run["pages"], None, config.cutoff(D1))
        assert json.loads(json.dumps(run))["window_end"] == "2026-11-27T00:00:00+08:00"  # an Airflow XCom
    # acceptance case 116 (the same version twice), and each version of the last 6 hours read again
    band = sum(instant >= config.cutoff(D1) - dt.timedelta(hours=6) for _, instant in valid["enterprises"])
    assert band > 0 and runs["enterprises"]["duplicates"] == 1 + band
    assert all(run["late"] == 0 for run in runs.values())  # nothing was held back: no late faults


def test_watermark_advances_with_each_night_and_a_backfill_never_rewinds_it(dataset, warehouse_url):
    def extract(day: dt.date, url: str) -> dict:
        return extract_resource("penalties", day, warehouse_url=warehouse_url, platform_url=url, token="test-token")

    def high_water() -> dt.datetime:
        with warehouse.connect(warehouse_url) as conn:
            return conn.execute("select high_water from audit.watermarks where resource = 'penalties'").fetchone()[0]

    with running(dataset) as url:
        first = extract(D1, url)
        assert high_water() == config.cutoff(D1)
        second = extract(D2, url)
        assert (second["window_start"], second["window_end"]) == ("2026-11-26T00:00:00+08:00", "2026-11-28T00:00:00+08:00")
        assert high_water() == config.cutoff(D2)
        backfill = extract(D1 - dt.timedelta(days=3), url)
        again = extract(D2, url)
        # A date after today would move the watermark into the future, and every later night would find
        # its window covered and archive nothing: refused, the watermark stays.
        with pytest.raises(ExtractError, match=r"penalties: cannot grade 2062-11-26: it is after today .*watermark stays"):
            extract(dt.date(2062, 11, 26), url)
    assert high_water() == config.cutoff(D2)
    assert (backfill["status"], backfill["fetched"], backfill["pages"]) == ("succeeded", 0, 0)
    assert first["archived"] > 0 and second["archived"] == 2  # versions stamped on D2 (cases 114, 115)
    # A rerun of the night re-reads the lookback before its watermark and adds nothing.
    assert (again["attempt"], again["window_start"], again["archived"], again["quarantined"]) == (
        2, "2026-11-27T00:00:00+08:00", 0, 0)
    with pytest.raises(ValueError, match="replication lag"):
        extract_resource("penalties", D1, warehouse_url=warehouse_url, platform_url=url, token="test-token",
                         lookback=dt.timedelta(hours=5))


def test_a_platform_down_past_the_retries_raises_and_the_next_run_resumes(dataset, warehouse_url):
    options = dict(warehouse_url=warehouse_url, token="test-token", retry=Retry(attempts=3, backoff=0.01))
    with running(dataset) as url:
        extract_resource("honors", D1, platform_url=url, **options)
    with running(dataset, faults="server_error=1.0") as url:
        with pytest.raises(ExtractError) as failure:
            extract_resource("honors", D2, platform_url=url, **options)
    message = str(failure.value)
    assert "honors window (2026-11-26T00:00:00+08:00, 2026-11-28T00:00:00+08:00) page 1" in message
    assert "gave up after 3 attempts; last HTTP status 50" in message
    assert "watermark stays 2026-11-27T00:00:00+08:00" in message
    with running(dataset) as url:
        resumed = extract_resource("honors", D2, platform_url=url, **options)
    with warehouse.connect(warehouse_url) as conn:
        runs = conn.execute("select load_id, status, retries, archived, error is not null from audit.load_runs"
                            " where resource = 'honors' order by started_at").fetchall()
    assert runs == [(f"{D1}/honors/1", "succeeded", 0, runs[0][3], False), (f"{D2}/honors/1", "failed", 2, 0, True),
                    (f"{D2}/honors/2", "succeeded", 0, 0, False)]
    assert resumed["window_start"] == "2026-11-26T00:00:00+08:00"


def test_a_retry_after_beyond_the_cap_fails_the_attempt_at_once(dataset, warehouse_url, monkeypatch):
    """A platform asking to wait longer than CREDITPLUS_MAX_RETRY_AFTER is not waited for (the run would
    hold its transaction and lock meanwhile, and later nights queue behind it). The simulator asks for 1 s."""
    monkeypatch.setenv("CREDITPLUS_MAX_RETRY_AFTER", "0.5")
    with running(dataset, faults="rate_limit=1.0") as url:
        with pytest.raises(ExtractError) as failure:
            extract_resource("patents", D1, warehouse_url=warehouse_url, platform_url=url, token="test-token")
    assert "asked to wait 1 s (HTTP 429 Retry-After), more than the 0.5 s of CREDITPLUS_MAX_RETRY_AFTER" in str(failure.value)
    with warehouse.connect(warehouse_url) as conn:  # no retry: the first 429 ended the attempt
        assert conn.execute("select status, archived, retries from audit.load_runs where resource = 'patents'"
                            ).fetchall() == [("failed", 0, 0)]


@pytest.fixture
def waits(warehouse_url, monkeypatch) -> Iterator[list[tuple[float, int, int, bool]]]:
    """Every wait of 0.5 s or more the extractor sleeps, with what a separate session saw at that moment:
    (seconds, advisory locks held in the warehouse, its sessions idle in transaction, whether a later night
    could take the resource's extract lock)."""
    seen: list[tuple[float, int, int, bool]] = []
    sleep = extract.time.sleep
    with warehouse.connect(warehouse_url, autocommit=True) as probe:
        def probing_sleep(seconds: float) -> None:
            if seconds >= 0.5:
                seen.append((seconds, *probe.execute(
                    "select (select count(*) from pg_locks l join pg_database d on d.oid = l.database"
                    "         where l.locktype = 'advisory' and d.datname = current_database()),"
                    " (select count(*) from pg_stat_activity"
                    "   where datname = current_database() and state like 'idle in transaction%%'),"
                    " pg_try_advisory_xact_lock(hashtext('creditplus.extract'), hashtext('patents'))").fetchone()))
            sleep(seconds)

        monkeypatch.setattr(extract.time, "sleep", probing_sleep)
        yield seen


# rate_limit=0.15 with fault seed 13: of patents' 8 requests at page_size 20 (7 pages of the window, then 1 of
# its last 6 hours) the 8th is answered 429, all the window loaded; then, from the start again, the 6th.
RATE_LIMITED = dict(faults="rate_limit=0.15", fault_seed=13)


def test_a_retry_after_longer_than_max_backoff_is_waited_holding_no_transaction_or_lock(dataset, warehouse_url, waits):
    """Later nights must not queue behind a run that waits for the platform: the attempt ends (rolled back, the
    lock released), the wait is slept outside any transaction, and a new attempt starts from the watermark."""
    valid, refused = dataset_versions(dataset, config.cutoff(D1))
    with running(dataset, **RATE_LIMITED) as url:
        run = extract_resource("patents", D1, warehouse_url=warehouse_url, platform_url=url, token="test-token",
                               retry=FAST, page_size=20)
    assert waits == [(1.0, 0, 0, True), (1.0, 0, 0, True)]  # the simulator's Retry-After: 1, FAST waits 0.1 s inline
    with warehouse.connect(warehouse_url) as conn:
        assert sorted(archived_versions(conn)["patents"]) == sorted(valid["patents"])  # complete, each version once
        assert quarantined(conn)["patents"] == refused["patents"]
        rows = conn.execute("select attempt, status, archived, pages, error from audit.load_runs"
                            " where resource = 'patents' order by attempt").fetchall()
    assert [row[:4] for row in rows] == [(1, "failed", 0, 7), (2, "failed", 0, 5),
                                         (3, "succeeded", len(valid["patents"]), 8)]
    assert (run["attempt"], run["status"], run["window_start"], run["error"]) == (3, "succeeded", None, None)
    band = f"({(config.cutoff(D1) - dt.timedelta(hours=6)).astimezone(config.CST).isoformat()}, 2026-11-27T00:00:00+08:00)"
    for row, where in zip(rows, [f"{band} page 1", "(-, 2026-11-27T00:00:00+08:00) page 6"]):
        assert row[4] == (f"patents window {where}: the platform at {url} asked to wait 1 s (HTTP 429 Retry-After), "
                          "longer than the 0.1 s waited inline (Retry.max_backoff); the transaction and lock were "
                          "released before any wait")
    assert rows[2][4] is None


def test_a_platform_asking_to_wait_in_every_attempt_fails_in_one_line(dataset, warehouse_url, waits):
    with running(dataset, faults="rate_limit=1.0") as url:
        with pytest.raises(ExtractError) as failure:
            extract_resource("patents", D1, warehouse_url=warehouse_url, platform_url=url, token="test-token",
                             retry=Retry(attempts=2, backoff=0.01, max_backoff=0.1))
    assert str(failure.value) == (
        f"patents window (-, 2026-11-27T00:00:00+08:00) page 1: the platform at {url} asked to wait 1 s (HTTP 429 "
        "Retry-After), longer than the 0.1 s waited inline (Retry.max_backoff); each of 2 attempts (Retry.attempts) "
        "was asked to wait, nothing was archived and the watermark stays: run again later")
    assert waits == [(1.0, 0, 0, True)]  # between the two attempts; none after the last
    with warehouse.connect(warehouse_url) as conn:
        assert conn.execute("select attempt, status, archived from audit.load_runs order by attempt").fetchall() == [
            (1, "failed", 0), (2, "failed", 0)]
        assert conn.execute("select count(*) from audit.watermarks").fetchone()[0] == 0


def test_a_retry_after_within_max_backoff_is_waited_inline(dataset, warehouse_url, waits):
    """The simulator's 1 s with a max_backoff of 1 s: waited inside the attempt (the lock held), one attempt."""
    valid, _ = dataset_versions(dataset, config.cutoff(D1))
    with running(dataset, **RATE_LIMITED) as url:
        run = extract_resource("patents", D1, warehouse_url=warehouse_url, platform_url=url, token="test-token",
                               retry=Retry(attempts=8, backoff=0.01, max_backoff=1.0), page_size=20)
    assert waits and all((seconds, locks, free) == (1.0, 1, False) for seconds, locks, _, free in waits)
    assert (run["attempt"], run["status"], run["archived"], run["retries"]) == (
        1, "succeeded", len(valid["patents"]), len(waits))
    with warehouse.connect(warehouse_url) as conn:
        assert sorted(archived_versions(conn)["patents"]) == sorted(valid["patents"])
        assert conn.execute("select count(*) from audit.load_runs").fetchone()[0] == 1


def test_a_record_that_is_not_utf8_is_quarantined_with_its_bytes_and_the_page_archived(dataset, warehouse_url, tmp_path):
    """A platform with a broken encoder: the simulator serves the line byte for byte (and can order it among
    lines of the same instant), the extractor refuses just that record, keeping its bytes."""
    import httpx

    from creditplus.load import NOT_UTF8

    lines = (dataset / "honors.jsonl").read_bytes().splitlines()
    broken = lines[0].replace("黑河市诚信示范企业".encode(), b"\xff\xfe broken")
    assert broken != lines[0]
    twin = json.loads(lines[1]) | {"record_id": "HO-TWIN", "updated_at": json.loads(lines[0])["updated_at"]}
    (tmp_path / "honors.jsonl").write_bytes(b"\n".join([broken, *lines[1:], json.dumps(twin).encode()]) + b"\n")
    with running(tmp_path) as url:
        page = httpx.get(f"{url}/api/v1/resources/honors", params={"page_size": 5000},
                         headers={"Authorization": "Bearer test-token"})
        run = extract_resource("honors", D1, warehouse_url=warehouse_url, platform_url=url, token="test-token")
    assert page.status_code == 200 and b"\xff\xfe broken" in page.content
    others = [json.loads(line) for line in [*lines[1:], json.dumps(twin).encode()]]
    others = [r for r in others if parse_timestamp(r["updated_at"]) < config.cutoff(D1)]
    valid = sum(refusal("honors", r) is None for r in others)
    assert (run["status"], run["fetched"], run["archived"], run["quarantined"]) == (
        "succeeded", len(others) + 1, valid, len(others) - valid + 1)
    with warehouse.connect(warehouse_url) as conn:
        found = conn.execute("select record_key, original from audit.quarantine where reason = %s", (NOT_UTF8,)).fetchall()
        assert conn.execute("select count(*) from raw.honors where record_id = 'HO-TWIN'").fetchone()[0] == 1
    assert [key for key, _ in found] == [json.loads(lines[0])["record_id"]]
    assert "\\xff\\xfe broken" in found[0][1]


def test_connection_refused_and_a_wrong_token_name_the_cause(dataset, warehouse_url):
    with running(dataset) as url:
        with pytest.raises(ExtractError, match="answered HTTP 401 .*check CREDITPLUS_PLATFORM_TOKEN"):
            extract_resource("donations", D1, warehouse_url=warehouse_url, platform_url=url, token="wrong")
    # The server has stopped: its port now refuses connections.
    with pytest.raises(ExtractError, match=r"donations window \(-, 2026-11-27T00:00:00\+08:00\) page 1: gave up after 2 "
                                           r"attempts; last HTTP status none \(ConnectError"):
        extract_resource("donations", D1, warehouse_url=warehouse_url, platform_url=url, token="test-token",
                         retry=Retry(attempts=2, backoff=0.01))


def test_a_failing_load_stops_the_fetch_and_records_the_failed_run(dataset, warehouse_url):
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        conn.execute("drop table raw.patents")
    with running(dataset) as url:
        with pytest.raises(psycopg.errors.UndefinedTable):  # small pages: the fetch thread is still paging
            extract_resource("patents", D1, warehouse_url=warehouse_url, platform_url=url, token="test-token",
                             page_size=5)
        assert list_resources(url, "test-token") == [res.name for res in RESOURCES]
    with warehouse.connect(warehouse_url) as conn:
        status, error = conn.execute("select status, error from audit.load_runs").fetchone()
        watermarks = conn.execute("select count(*) from audit.watermarks").fetchone()[0]
    assert (status, watermarks) == ("failed", 0) and 'relation "raw.patents" does not exist' in error
