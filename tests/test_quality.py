"""The data-quality gate (creditplus.quality) against real PostgreSQL.

One base warehouse per session: the acceptance dataset archived as night D with load runs and
seven earlier nights of history, staging and seeds built by dbt, and marts holding the
acceptance case's expected evaluation. Every test runs on a copy (``create database ... template``),
breaks one thing in real tables and runs a gate.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import random
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from conftest import BASIC_CASE
from creditplus import dbt_runner, quality, validation, warehouse
from creditplus.load import empty_counts, load_lines
from creditplus.resources import RESOURCES

pytestmark = pytest.mark.slow

CASE = BASIC_CASE
D = dt.date(2026, 11, 26)
HISTORY_NIGHTS = 7
CAPPED = "91231123763662782A"  # case 67: total 741, computed C, capped at D by a dishonest-debtor listing
NOT_GRADED = "91231181750669221J"  # case 15: cancelled

MARTS_DDL = """
create schema if not exists marts;
create table marts.fct_enterprise_evaluation (
    evaluation_date date, uscc text, enterprise_name text, legal_rep_name text, region_code text,
    industry_code text, is_leading boolean, model_version text, total_score integer, grade text,
    computed_grade text, cap_reason text, basic_score integer, operations_score integer, social_score integer);
create table marts.fct_indicator_score (
    evaluation_date date, uscc text, model_version text, indicator_code text, indicator_name text,
    indicator_name_en text, level1 text, points integer, max_points integer, under_objection boolean);
create temp table expected_evaluation (uscc text, total_score integer, grade text, computed_grade text,
    cap_reason text, basic_score integer, operations_score integer, social_score integer);
create temp table expected_indicators (uscc text, indicator_code text, points integer);
"""
MARTS_FILL = ("""
insert into marts.fct_enterprise_evaluation
select %(d)s, x.uscc, e.name, e.legal_rep_name, e.region_code, e.industry_code, e.is_leading, 'v1',
       x.total_score, x.grade, x.computed_grade, x.cap_reason, x.basic_score, x.operations_score, x.social_score
from expected_evaluation x join staging.stg_enterprises e using (uscc)""", """
insert into marts.fct_indicator_score
select %(d)s, x.uscc, 'v1', x.indicator_code, i.name_zh, i.name_en, i.level1, x.points, i.max_points, false
from expected_indicators x join staging.scoring_indicators i on i.model_version = 'v1' and i.indicator_code = x.indicator_code
""")


def _archive_night(conn, dataset: Path, day: dt.date) -> None:
    """Archive ``dataset`` as night ``day`` the way the extractor does: one load run per resource."""
    for res in RESOURCES:
        load_id = f"{day}/{res.name}/1"
        path = dataset / f"{res.name}.jsonl"
        counts = load_lines(conn, res.name, path.open(encoding="utf-8"), load_id) if path.exists() else empty_counts()
        conn.execute(
            "insert into audit.load_runs (load_id, resource, evaluation_date, attempt, window_end, started_at,"
            " finished_at, status, fetched, archived, duplicates, quarantined)"
            " values (%s, %s, %s, 1, %s, now(), now(), 'succeeded', %s, %s, %s, %s)",
            (load_id, res.name, day, day + dt.timedelta(days=1), counts["fetched"], counts["archived"],
             counts["duplicates"], counts["quarantined"]))
    # Normal earlier nights: the same volumes (nothing archived under their load ids).
    conn.execute(
        "insert into audit.load_runs (load_id, resource, evaluation_date, attempt, window_end, started_at, status,"
        " fetched, quarantined)"
        " select (r.evaluation_date - n) || '/' || r.resource || '/1', r.resource, r.evaluation_date - n, 1,"
        "        r.window_end, r.started_at, 'succeeded', r.fetched, 0"
        " from audit.load_runs r, generate_series(1, %s) n where r.evaluation_date = %s",
        (HISTORY_NIGHTS, day))


@pytest.fixture(scope="session")
def base(make_database, pg_server, tmp_path_factory) -> str:
    """Name of the prepared base database (never connected to while tests copy it)."""
    url = make_database("cp_quality_base")
    with warehouse.connect(url) as conn:
        warehouse.setup(conn)
        _archive_night(conn, CASE / "dataset", D)
        conn.commit()
    env = {**os.environ, **warehouse.dbt_env(url), "DO_NOT_TRACK": "1"}
    dbt_runner.run(["build", "--select", "path:models/staging path:seeds", "--exclude-resource-type", "test",
                    "--vars", json.dumps({"evaluation_date": str(D)})],
                   env=env, target_path=tmp_path_factory.mktemp("dbt-target"))
    with warehouse.connect(url) as conn:
        conn.execute(MARTS_DDL)
        with conn.cursor() as cur:
            for table, csv in (("expected_evaluation", "evaluation.csv"), ("expected_indicators", "indicator_scores.csv")):
                with cur.copy(sql.SQL("copy {} from stdin (format csv, header true)").format(sql.Identifier(table))) as copy:
                    copy.write((CASE / "expected" / csv).read_bytes())
        for statement in MARTS_FILL:
            conn.execute(statement, {"d": D})
        conn.commit()
    return url.rsplit("/", 1)[1]


@pytest.fixture
def wh(base, pg_server, tmp_path, monkeypatch):
    """A fresh copy of the base warehouse; CREDITPLUS_HOME in tmp_path (Data Docs land there)."""
    name = f"cp_quality_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("create database {} template {}").format(sql.Identifier(name), sql.Identifier(base)))
    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path))
    yield f"{pg_server}/{name}"
    with psycopg.connect(f"{pg_server}/postgres", autocommit=True) as admin:
        admin.execute(sql.SQL("drop database if exists {} with (force)").format(sql.Identifier(name)))


def execute(url: str, statement: str, params=None) -> None:
    with warehouse.connect(url) as conn:
        conn.execute(statement, params)
        conn.commit()


def rows(url: str, query: str, params=None) -> list[tuple]:
    with warehouse.connect(url) as conn:
        return conn.execute(query, params).fetchall()


def blocked(check, url: str, **kwargs) -> quality.QualityGateError:
    with pytest.raises(quality.QualityGateError) as info:
        check(D, warehouse_url=url, run_id="night-1", **kwargs)
    return info.value


def failed(error: quality.QualityGateError) -> set[str]:
    return {f"{o.suite}.{o.expectation}" for o in error.result.failures}


def test_importing_the_gate_does_not_import_great_expectations():
    """DAG files import the gate at parse time: GX (seconds to import) loads only when a gate runs."""
    probe = "import sys, creditplus.quality; print('great_expectations' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout == "False\n"


def test_stored_validation_results_are_pruned_to_the_newest(tmp_path):
    """The Data Docs index renders from the stored results: only the newest are kept (the warehouse keeps all)."""
    for night in range(5):
        result = tmp_path / "feed" / f"night-{night}" / "20261127T000000Z" / "warehouse-feed.json"
        result.parent.mkdir(parents=True)
        result.write_text("{}")
        os.utime(result, (night * 86400, night * 86400))
    (tmp_path / ".ge_store_backend_id").write_text("id")
    quality._prune(tmp_path, 3)
    assert sorted(p.parents[1].name for p in tmp_path.glob("*/*/*/*.json")) == ["night-2", "night-3", "night-4"]
    assert (tmp_path / ".ge_store_backend_id").exists()


def test_thresholds_file_defaults_and_overrides():
    defaults = quality.load_thresholds()
    assert defaults["feed"]["quarantine_critical_rate"] == 0.25 and defaults["marts"]["grade_moved_critical_share"] == 0.2
    assert quality.load_thresholds({"feed": {"min_fetched": 5}})["feed"]["min_fetched"] == 5
    with pytest.raises(ValueError, match="unknown thresholds feed.min_fechted"):
        quality.load_thresholds({"feed": {"min_fechted": 5}})


# ------------------------------------------------------------------ feed
def test_acceptance_night_passes_with_warnings_recorded_and_data_docs(wh, tmp_path):
    result = quality.check_feed(D, warehouse_url=wh, run_id="night-1")
    assert result.passed and result.gate == "feed"
    # The acceptance case refuses 9 of its 68 penalties on purpose, and states facts dated D+1.
    assert {o.expectation for o in result.warnings} == {"quarantine_rate_elevated", "event_dates_not_future"}
    elevated = next(o for o in result.warnings if o.expectation == "quarantine_rate_elevated")
    assert elevated.observed["unexpected"]["penalties"] == pytest.approx(9 / 68)
    stored = rows(wh, "select suite, expectation, severity, success, observed, observed_value"
                      " from audit.quality_results where run_id = 'night-1' order by expectation")
    assert len(stored) == len(result.outcomes) == 12
    by_name = {r[1]: r for r in stored}
    assert by_name["quarantine_rate_elevated"][2:4] == ("warning", False)
    assert "penalties=0.1324" in by_name["quarantine_rate_elevated"][4]
    assert by_name["quarantine_rate_excessive"][2:4] == ("critical", True)
    assert by_name["volume_collapsed"][5]["measured"]["social_insurance"] == 1.0
    assert result.data_docs == tmp_path / "data_docs" / "index.html" and result.data_docs.exists()
    assert "feed" in result.data_docs.read_text(encoding="utf-8")


def test_quarantine_rate_above_critical_blocks(wh):
    execute(wh, "update audit.load_runs set quarantined = fetched / 2"
                " where resource = 'financials' and evaluation_date = %s", (D,))
    error = blocked(quality.check_feed, wh)
    assert failed(error) == {"feed.quarantine_rate_excessive"}
    message = str(error)
    assert "feed.quarantine_rate_excessive [critical] observed financials=0.5 (expected <= 0.25)" in message
    assert rows(wh, "select success from audit.quality_results where expectation = 'quarantine_rate_excessive'") == [(False,)]


def test_a_resource_returning_almost_nothing_blocks(wh):
    execute(wh, "update audit.load_runs set fetched = 12 where resource = 'social_insurance' and evaluation_date = %s", (D,))
    error = blocked(quality.check_feed, wh)
    assert failed(error) == {"feed.volume_collapsed"}
    assert "feed.volume_collapsed [critical] observed social_insurance=0.00378 (expected >= 0.1)" in str(error)


def test_a_smaller_night_only_warns_and_too_little_history_is_not_judged(wh):
    execute(wh, "update audit.load_runs set fetched = fetched * 3 / 10 where resource = 'tax_ratings'"
                " and evaluation_date = %s", (D,))
    execute(wh, "delete from audit.load_runs where resource = 'financials' and evaluation_date < %s - 2", (D,))
    execute(wh, "update audit.load_runs set fetched = 1 where resource = 'financials' and evaluation_date = %s", (D,))
    result = quality.check_feed(D, warehouse_url=wh, run_id="night-1")
    dropped = next(o for o in result.warnings if o.expectation == "volume_dropped")
    assert dropped.observed["unexpected"] == {"tax_ratings": pytest.approx(142 / 476, abs=0.01)}
    assert rows(wh, "select metrics ->> 'volume_ratio', metrics ->> 'history_nights' from audit.quality_metrics"
                    " where subject = 'financials'") == [(None, "2")]
    assert rows(wh, "select severity, success from audit.quality_results where expectation = 'volume_dropped'"
                    " and run_id = 'night-1'") == [("warning", False)]
    # A retried task (same run id) replaces its rows.
    quality.check_feed(D, warehouse_url=wh, run_id="night-1")
    assert rows(wh, "select count(*) from audit.quality_results") == [(len(result.outcomes),)]


def test_an_implausible_amount_only_warns(wh):
    execute(wh, _raw_version("financials", {"uscc": FINANCIAL["uscc"], "year": "2025"},
                             {**FINANCIAL, "revenue_wan": "50000000000000.00"}))  # 5e13 万元: a unit error
    result = quality.check_feed(D, warehouse_url=wh, run_id="night-1")
    assert result.passed
    implausible = next(o for o in result.warnings if o.expectation == "amounts_plausible")
    assert implausible.observed["unexpected"] == {"financials": 1}


def test_a_version_archived_after_a_publication_that_graded_without_it_warns(wh):
    """Night D was published; a later load archives a version older than D's cutoff (the platform sent it
    later than its replication lag): D's publication graded without it."""
    execute(wh, "insert into audit.publications (evaluation_date, model_version, run_id, published_by,"
                " enterprise_count, indicator_count) values (%s, 'v1', 'night-1', 'credit_nightly', 1, 1)", (D,))
    execute(wh, _raw_version("financials", {"uscc": FINANCIAL["uscc"], "year": "2024"}, {**FINANCIAL, "year": 2024}))
    result = quality.check_feed(D, warehouse_url=wh, run_id="night-1-rerun")
    assert result.passed
    missed = next(o for o in result.warnings if o.expectation == "nothing_missed_by_the_publication")
    assert missed.observed["unexpected"] == {"financials": 1}


def _raw_version(resource: str, key: dict, record: dict) -> str:
    """Insert a version into raw directly, past the loader's validation, as a loader bug would."""
    columns = sql.SQL(", ").join(map(sql.Identifier, key))
    values = sql.SQL(", ").join(map(sql.Literal, key.values()))
    return sql.SQL("insert into raw.{} ({}, updated_at, record, _load_id) values ({}, {}, {}, {})").format(
        sql.Identifier(resource), columns, values, sql.Literal(record["updated_at"]),
        sql.Literal(json.dumps(record)), sql.Literal(f"{D}/{resource}/1")).as_string(None)


BAD_USCC = "912311237510600713"  # case 1's code with a wrong check character
FINANCIAL = {"uscc": "912311237510600712", "year": 2025, "updated_at": "2026-11-26T12:00:00+08:00"}

FEED_BREAKS = {
    "feed.load_run_recorded": "delete from audit.load_runs where resource = 'patents'",  # history too: no volume verdict
    "feed.versions_unique": "alter table raw.penalties drop constraint penalties_record_id_updated_at_key;"
                            " insert into raw.penalties select * from raw.penalties limit 1",
    "feed.uscc_check_character": _raw_version("enterprises", {"uscc": BAD_USCC}, {
        "uscc": BAD_USCC, "name": "x", "established_on": "2001-01-01", "reg_status": "active",
        "updated_at": "2026-11-26T12:00:00+08:00"}),
    "feed.amounts_not_negative": _raw_version("financials", {"uscc": FINANCIAL["uscc"], "year": "2025"},
                                              {**FINANCIAL, "total_liabilities_wan": "-5.00"}),
}


@pytest.mark.parametrize("expectation", FEED_BREAKS)
def test_every_critical_feed_expectation_can_block(wh, expectation):
    execute(wh, FEED_BREAKS[expectation])
    error = blocked(quality.check_feed, wh)
    assert failed(error) == {expectation}
    assert expectation in str(error)


def test_sql_check_character_agrees_with_the_loader(warehouse_url):
    codes = []
    for line in (CASE / "dataset" / "enterprises.jsonl").read_text(encoding="utf-8").splitlines():
        try:
            code = json.loads(line)["uscc"]
        except (ValueError, KeyError, TypeError):
            continue
        if isinstance(code, str):
            codes.append(code)
    codes += [c[:17] + x for c in codes[:20] for x in "0AY"] + ["", "91231123751060071", "I" * 18]
    codes += generated_codes(100_000)
    sql_valid = dict(rows(warehouse_url, "select c, audit.uscc_is_valid(c) from unnest(%s::text[]) c", (codes,)))
    python_valid = {c: validation.is_valid_uscc(c) for c in codes}
    assert sql_valid == python_valid
    assert 40_000 < sum(python_valid.values()) < 60_000  # both kinds well represented


def generated_codes(count: int, seed: int = 20261206) -> list[str]:
    """``count`` codes, half valid (random body, its check character), half each mutated once: a character
    replaced (letters the standard leaves out, lower case, full-width and Arabic-Indic digits, space), two swapped,
    one dropped or added."""
    from stdnum.cn import uscc as stdnum_uscc

    chance = random.Random(seed)
    alphabet, foreign = "0123456789ABCDEFGHJKLMNPQRTUWXY", "IOSVZa９٣ -"
    codes = []
    for n in range(count):
        body = "".join(chance.choice(alphabet) for _ in range(17))
        code = body + stdnum_uscc.calc_check_digit(body)
        if n % 2:
            at, kind = chance.randrange(18), chance.randrange(4)
            if kind == 0:
                code = code[:at] + chance.choice(alphabet + foreign) + code[at + 1:]
            elif kind == 1 and at < 17:
                code = code[:at] + code[at + 1] + code[at] + code[at + 2:]
            elif kind == 2:
                code = code[:at] + code[at + 1:]
            else:
                code = code[:at] + chance.choice(alphabet) + code[at:]
        codes.append(code)
    return codes


# ------------------------------------------------------------------ staging + marts
def test_acceptance_marts_pass(wh):
    result = quality.check_marts(D, warehouse_url=wh, run_id="night-1")
    assert result.passed
    # Records of enterprises refused at load (cases 130-135) point at enterprises staging does not know.
    [unknown] = result.warnings
    assert unknown.expectation == "known_enterprises" and unknown.observed["unexpected"]["financials"] == 15
    assert {o.suite for o in result.outcomes} == {"staging", "marts"}
    assert rows(wh, "select metrics ->> 'results', metrics ->> 'population' from audit.quality_metrics"
                    " where suite = 'marts'") == [("179", "179")]
    assert rows(wh, "select count(*) from audit.quality_results where run_id = 'night-1'") == [(len(result.outcomes),)]


EVALUATION, INDICATORS = "marts.fct_enterprise_evaluation", "marts.fct_indicator_score"
MARTS_BREAKS = {
    "staging.enum_domains": f"insert into staging.stg_tax_ratings (uscc, year, rating) values ('{CAPPED}', 2025, 'AA')",
    "staging.financial_sanity": "insert into staging.stg_financials (uscc, year, total_assets_wan)"
                                f" values ('{CAPPED}', 2026, -1.00)",
    "marts.one_result_per_enterprise": f"insert into {EVALUATION} select * from {EVALUATION} where uscc = '{CAPPED}'",
    "marts.population_graded": f"delete from {EVALUATION} where uscc = '{CAPPED}'",
    "marts.only_population_graded":
        f"insert into {EVALUATION} select evaluation_date, '{NOT_GRADED}', enterprise_name, legal_rep_name, region_code,"
        " industry_code, is_leading, model_version, total_score, grade, computed_grade, cap_reason, basic_score,"
        f" operations_score, social_score from {EVALUATION} where uscc = '{CAPPED}';"
        f" insert into {INDICATORS} select evaluation_date, '{NOT_GRADED}', model_version, indicator_code, indicator_name,"
        f" indicator_name_en, level1, points, max_points, under_objection from {INDICATORS} where uscc = '{CAPPED}'",
    "marts.points_within_max": f"update {INDICATORS} set points = max_points + 1 where uscc = '{CAPPED}'"
                               " and indicator_code = 'O11'",
    "marts.indicators_complete": f"delete from {INDICATORS} where uscc = '{CAPPED}' and indicator_code = 'O8'",
    "marts.level1_sums": f"update {EVALUATION} set basic_score = basic_score + 1, operations_score = operations_score - 1"
                         f" where uscc = '{CAPPED}'",
    "marts.total_sums": f"update {EVALUATION} set total_score = total_score + 1 where uscc = '{CAPPED}'",
    "marts.computed_grade_from_total": f"update {EVALUATION} set computed_grade = 'B' where uscc = '{CAPPED}'",
    "marts.grade_with_caps": f"update {EVALUATION} set grade = 'C' where uscc = '{CAPPED}'",
    "marts.model_version_in_force": f"update {EVALUATION} set model_version = 'v0' where uscc = '{CAPPED}'",
}


@pytest.mark.parametrize("expectation", MARTS_BREAKS)
def test_every_critical_marts_expectation_can_block(wh, expectation):
    execute(wh, MARTS_BREAKS[expectation])
    error = blocked(quality.check_marts, wh)
    assert expectation in failed(error)
    assert expectation in str(error)


def _publish_with_moved_grades(url: str, share: float, model_version: str = "v1") -> None:
    """A current publication of D-1: the marts with the grade of ``share`` of the enterprises moved."""
    execute(url, f"""
with p as (
    insert into audit.publications (evaluation_date, model_version, run_id, published_by, is_current,
                                    enterprise_count, indicator_count)
    values (%(d)s - 1, %(v)s, 'night-0', 'test', true, 0, 0) returning publication_id)
insert into publication.enterprise_evaluation
select p.publication_id, e.evaluation_date - 1, e.uscc, e.enterprise_name, e.legal_rep_name, e.region_code,
       e.industry_code, e.is_leading, %(v)s, e.total_score,
       case when e.n <= %(share)s * e.total then (case when e.grade = 'A' then 'B' else 'A' end) else e.grade end,
       e.computed_grade, e.cap_reason, e.basic_score, e.operations_score, e.social_score
from p, (select *, row_number() over (order by uscc) as n, count(*) over () as total from {EVALUATION}) e
""", {"d": D, "v": model_version, "share": share})


def test_a_mass_movement_of_grades_is_held_for_review(wh):
    _publish_with_moved_grades(wh, 0.3)
    error = blocked(quality.check_marts, wh)
    assert failed(error) == {"marts.grade_mass_movement"}
    assert "marts.grade_mass_movement [critical] observed marts=0.2961 (expected <= 0.2)" in str(error)


def test_some_movement_warns_and_a_new_model_version_is_not_judged(wh):
    _publish_with_moved_grades(wh, 0.1)
    result = quality.check_marts(D, warehouse_url=wh, run_id="night-1")
    assert [o.expectation for o in result.warnings] == ["known_enterprises", "grade_movement"]
    execute(wh, "update audit.publications set is_current = false")
    _publish_with_moved_grades(wh, 1.0, model_version="v0")
    result = quality.check_marts(D, warehouse_url=wh, run_id="night-2")
    assert result.passed and [o.expectation for o in result.warnings] == ["known_enterprises"]

