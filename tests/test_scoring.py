"""The scoring warehouse end to end: the acceptance dataset loaded with the real loader into a fresh
database, ``dbt build`` for its date, marts compared with the independently computed expected CSVs;
the rerun property, the SCD2 history, unscorable records and an incomplete catalogue."""
from __future__ import annotations

import csv
import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from psycopg import sql

from conftest import BASIC_CASE
from creditplus import config, dbt_runner, load, warehouse

CASE = BASIC_CASE
D = dt.date(2026, 11, 26)
DATASETS = Path(__file__).parent / "datasets"
EVAL_COLS = ("total_score", "grade", "computed_grade", "cap_reason", "basic_score", "operations_score", "social_score")



def expected():
    with open(CASE / "expected" / "evaluation.csv", newline="", encoding="utf-8") as f:
        evaluation = {r["uscc"]: tuple(r[c] for c in EVAL_COLS) for r in csv.DictReader(f)}
    with open(CASE / "expected" / "indicator_scores.csv", newline="", encoding="utf-8") as f:
        indicators = {(r["uscc"], r["indicator_code"]): r["points"] for r in csv.DictReader(f)}
    return evaluation, indicators


def marts(url: str, evaluation_sql: str = "select * from marts.fct_enterprise_evaluation",
          indicator_sql: str = "select * from marts.fct_indicator_score"):
    with warehouse.connect(url) as conn:
        cur = conn.execute(f"select uscc, {', '.join(EVAL_COLS)} from ({evaluation_sql}) e")
        evaluation = {r[0]: tuple("" if v is None else str(v) for v in r[1:]) for r in cur}
        indicators = {(r[0], r[1]): str(r[2]) for r in conn.execute(
            f"select uscc, indicator_code, points from ({indicator_sql}) i")}
    return evaluation, indicators


def history_as_of(url: str, day: dt.date):
    return marts(
        url,
        f"select * from marts.evaluation_history where graded and valid_from <= '{day}' and (valid_to is null or valid_to > '{day}')",
        f"select * from marts.indicator_history where graded and valid_from <= '{day}' and (valid_to is null or valid_to > '{day}')",
    )


def assert_same(actual, wanted):
    (a_eval, a_ind), (w_eval, w_ind) = actual, wanted
    diffs = [f"{u}: got {a_eval.get(u)}, expected {w_eval.get(u)}" for u in sorted(a_eval.keys() | w_eval.keys())
             if a_eval.get(u) != w_eval.get(u)]
    diffs += [f"{k}: got {a_ind.get(k)}, expected {w_ind.get(k)}" for k in sorted(a_ind.keys() | w_ind.keys())
              if a_ind.get(k) != w_ind.get(k)]
    assert not diffs, f"{len(diffs)} differences:\n" + "\n".join(diffs[:40])


def fresh_warehouse(make_database) -> str:
    url = make_database("cp_scoring")
    with warehouse.connect(url) as conn:
        warehouse.setup(conn)
    return url


def archive(url: str, dataset: Path, load_id: str) -> None:
    with warehouse.connect(url) as conn:
        load.archive_dataset_dir(conn, dataset, load_id)


def history_rows(url: str) -> tuple[int, int]:
    with warehouse.connect(url) as conn:
        return conn.execute("select (select count(*) from marts.evaluation_history),"
                            " (select count(*) from marts.indicator_history)").fetchone()


@pytest.fixture(scope="module")
def acceptance_url(make_database):
    url = fresh_warehouse(make_database)
    archive(url, CASE / "dataset", "acceptance")
    dbt_runner.build(D, warehouse_url=url)
    return url


def test_marts_equal_the_expected_results_of_the_acceptance_case(acceptance_url):
    assert_same(marts(acceptance_url), expected())


def test_history_of_the_first_night_is_the_evaluation(acceptance_url):
    assert_same(history_as_of(acceptance_url, D), expected())


def test_dbt_unit_tests_pass(acceptance_url):
    # The nightly build leaves the dbt unit tests out (dbt_runner.build(unit_tests=False)); they run here,
    # against the relations of the acceptance warehouse (dbt reads their columns' types from there).
    dbt_runner.unit_test(warehouse_url=acceptance_url)


def test_rerun_after_newer_data_gives_the_same_answer_and_no_new_history(acceptance_url, tmp_path):
    """Versions stamped at or after the cutoff (D+1 00:00 +08:00) change nothing about D."""
    before = history_rows(acceptance_url)
    late = tmp_path / "late"
    late.mkdir()
    stamp = "2026-11-27T00:00:00+08:00"
    with warehouse.connect(acceptance_url) as conn:
        for resource in ("enterprises", "penalties", "tax_ratings", "credit_repairs", "objections", "self_reports"):
            rows = conn.execute(f"select record from raw.{resource}").fetchall()
            with open(late / f"{resource}.jsonl", "w", encoding="utf-8") as out:
                for (record,) in rows:
                    changed = {**record, "updated_at": stamp}
                    for field, value in (("reg_status", "cancelled"), ("severity", "severe"), ("rating", "D"),
                                         ("status", {"credit_repairs": "approved", "objections": "upheld",
                                                     "self_reports": "confirmed"}.get(resource, "revoked")),
                                         ("decided_on", str(D)), ("reviewed_on", str(D)),
                                         ("resolved_at", "2026-11-20T10:00:00+08:00")):
                        if field in changed:
                            changed[field] = value
                    out.write(json.dumps(changed, ensure_ascii=False) + "\n")
    archive(acceptance_url, late, "late")
    dbt_runner.build(D, warehouse_url=acceptance_url)
    assert_same(marts(acceptance_url), expected())
    assert history_rows(acceptance_url) == before


def test_history_stores_changes_and_answers_every_night_and_backfill(acceptance_url):
    """Night D+1 adds rows only for what changed; a backfill of D-6 leaves D and D+1 answerable."""
    nights = {}
    before = history_rows(acceptance_url)
    for day in (D + dt.timedelta(days=1), D - dt.timedelta(days=6)):
        dbt_runner.build(day, warehouse_url=acceptance_url)
        nights[day] = marts(acceptance_url)
    after_two_nights = history_rows(acceptance_url)
    assert_same(history_as_of(acceptance_url, D), expected())
    for day, result in nights.items():
        assert_same(history_as_of(acceptance_url, day), result)
    # D+1 differs from D for a few enterprises only (B1 anniversaries, windows): far fewer than a copy
    print(f"history rows: after D {before}, after D+1 and backfill D-6 {after_two_nights}")
    assert after_two_nights[0] < 3 * before[0]


def staging_rows(url: str) -> dict[str, list[str]]:
    with warehouse.connect(url) as conn:
        tables = [t for (t,) in conn.execute("select table_name from information_schema.tables"
                                             " where table_schema = 'staging' and table_name like 'stg%' order by 1")]
        return {t: sorted(map(str, conn.execute(sql.SQL("select * from staging.{}").format(sql.Identifier(t)))))
                for t in tables}


def test_incremental_staging_equals_a_full_rebuild_after_a_backfill_and_a_forward_night(make_database):
    """Staging decodes only the keys with a newer version; after a backfill (D-400 after D), a forward
    night and a table left by another definition (stale rows) it holds what a full rebuild holds."""
    url = fresh_warehouse(make_database)
    archive(url, CASE / "dataset", "acceptance")
    dbt_runner.build(D, warehouse_url=url, select="staging")
    as_of_d = staging_rows(url)
    for day in (D - dt.timedelta(days=400), D):
        if day == D:
            with warehouse.connect(url) as conn:
                conn.execute("update staging.stg_enterprises set name = 'stale'")
                conn.execute("comment on table staging.stg_enterprises is 'stg_latest another definition'")
        dbt_runner.build(day, warehouse_url=url, select="staging")
        incremental = staging_rows(url)
        dbt_runner.build(day, warehouse_url=url, select="staging", full_refresh=True)
        assert incremental == staging_rows(url), f"incremental staging of {day} differs from a full rebuild"
        if day < D:
            assert incremental != as_of_d  # the backfill took versions out
    assert incremental == as_of_d


def test_unscorable_records_are_reported_not_scored(make_database):
    url = fresh_warehouse(make_database)
    archive(url, DATASETS / "scoring_unscorable", "unscorable")
    dbt_runner.build(D, warehouse_url=url)
    with warehouse.connect(url) as conn:
        reasons = sorted(conn.execute("select resource, record_key, reason from marts.fct_unscorable_records"))
        graded = conn.execute("select uscc from marts.fct_enterprise_evaluation").fetchall()
        o7 = conn.execute("select points from marts.fct_indicator_score where indicator_code = 'O7'").fetchall()
    assert reasons == [
        ("credit_repairs", "REP-X1", "target_not_found"),
        ("objections", "OBJ-X1", "target_not_negative"),
        ("penalties", "PEN-X2", "unknown_enterprise"),
    ]
    assert graded == [("912311237510600712",)] and o7 == [(80,)]  # PEN-X1 counts, PEN-X2 is nobody's


def test_incomplete_scoring_model_fails_the_build_naming_the_indicator(warehouse_url, tmp_path):
    project = copy_project(tmp_path)
    bands = project / "seeds" / "scoring_bands.csv"
    bands.write_text("".join(line for line in bands.read_text().splitlines(True) if ",O4," not in line))
    with pytest.raises(dbt_runner.DbtError, match=r"indicator O4 \(band\) has no bands"):
        dbt_runner.build(D, warehouse_url=warehouse_url, project_dir=project)


def test_missing_evaluation_date_is_a_clear_error(warehouse_url):
    with pytest.raises(dbt_runner.DbtError, match="var evaluation_date is required as YYYY-MM-DD"):
        dbt_runner.build("26/11/2026", warehouse_url=warehouse_url, select="int_population")


def copy_project(tmp_path: Path) -> Path:
    project = tmp_path / "dbt_project"
    shutil.copytree(config.DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs", "dbt_packages"))
    return project
