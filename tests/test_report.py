"""The nightly report (``creditplus.report``): the page the ``report`` task writes for the shared in-process night,
opened in headless Chromium (every chart drawn, no console error, nothing loaded from the network); and, on a
warehouse holding two hand-made publications, what it says: the migration matrix, the movers and why, objections
near or past their deadline, supply-chain warnings, the night's loads, quality and timings, and a failed night."""
from __future__ import annotations

import base64
import datetime as dt
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from creditplus import config, nightly, orchestration, report, warehouse
from conftest import BASIC_DAY, SCREENSHOTS, browser_errors

D0, D1, D2 = dt.date(2026, 11, 25), dt.date(2026, 11, 26), dt.date(2026, 11, 27)
SECTIONS = {"status": "概况", "grades": "等级分布", "migration": "等级迁移矩阵", "movers": "变动最大的企业",
            "level1": "一级指标得分分布", "loads": "各资源归档与隔离", "quality": "数据质量结果",
            "objections": "临近或超过期限的异议", "supply-chain": "供应链风险预警", "timings": "各阶段耗时"}


class _References(HTMLParser):
    """Every src/href of the page, and every url() or @import in its styles."""

    def __init__(self):
        super().__init__()
        self.found: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.found += [value or "" for name, value in attrs if name in ("src", "href", "srcset", "data", "action")]


def external_references(html: str) -> list[str]:
    parser = _References()
    parser.feed(html)
    css = re.findall(r"url\(\s*['\"]?([^'\")]+)", html) + re.findall(r"@import\s+['\"]?([^'\";]+)", html)
    return [ref for ref in parser.found + css if not ref.startswith(("data:", "#")) and re.match(r"^[a-z]+:|^//", ref, re.I)]


def open_page(browser, path: Path) -> list[dict]:
    """Load the file; the charts as the browser drew them."""
    browser_errors(browser)  # drain what earlier pages left
    browser.get(path.as_uri())
    return browser.execute_script(
        "return [...document.images].map(i => {const r = i.getBoundingClientRect();"
        " return {chart: i.dataset.chart, complete: i.complete, natural: i.naturalWidth, width: r.width,"
        " height: r.height}})")


def screenshot(browser, name: str) -> Path:
    """The whole page (beyond the window), as a PNG under SCREENSHOTS."""
    height = browser.execute_script("return document.documentElement.scrollHeight")
    width = browser.execute_script("return document.documentElement.scrollWidth")
    shot = browser.execute_cdp_cmd("Page.captureScreenshot", {
        "captureBeyondViewport": True, "clip": {"x": 0, "y": 0, "width": width, "height": height, "scale": 1}})
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    out = SCREENSHOTS / name
    out.write_bytes(base64.b64decode(shot["data"]))
    return out


def assert_charts_drawn(charts: list[dict], expected: set[str]) -> None:
    assert {c["chart"] for c in charts} == expected, charts
    for c in charts:
        assert c["complete"] and c["natural"] > 0 and c["width"] > 50 and c["height"] > 50, c


def section_texts(browser) -> dict[str, str]:
    return browser.execute_script(
        "return Object.fromEntries([...document.querySelectorAll('section')].map(s => [s.id, s.innerText]))")


# ---------------------------------------------------------------- the shared in-process night
@pytest.mark.slow
def test_the_night_writes_its_report_and_nightly_prints_where(in_process_night, browser):
    home, result = in_process_night["home"], in_process_night["result"]
    assert result.returncode == 0, result.stdout + result.stderr
    page = home / "reports" / f"{BASIC_DAY}.html"
    assert f"  report: {page}" in result.stdout.splitlines()  # printed by `creditplus nightly`
    assert page.stat().st_mode & 0o777 == 0o600 and page.parent.stat().st_mode & 0o777 == 0o700
    assert not list(page.parent.glob(".*.tmp"))  # written whole, then renamed
    html = page.read_text(encoding="utf-8")
    assert external_references(html) == [] and "<script" not in html

    charts = open_page(browser, page)
    # the first publication of this warehouse: nothing to migrate from
    assert_charts_drawn(charts, {"grades", "level1", "loads", "timings"})
    texts = section_texts(browser)
    assert set(texts) == set(SECTIONS)
    for section, heading in SECTIONS.items():
        assert heading in texts[section], section
    assert "已发布 Published" in texts["status"] and "无上一期发布可比" in texts["migration"]
    assert "feed.quarantine_rate_elevated" in texts["quality"]  # the dataset's known warning
    # the stages as Airflow recorded them (the task breadcrumbs), the report task itself still running
    for stage in ("setup", "extract", "check_feed", "dbt", "check_marts", "publish"):
        assert re.search(rf"^{stage}\t", texts["timings"], re.M), texts["timings"]
    assert "extract\t18\t" in texts["timings"]
    shot = screenshot(browser, "report.png")
    assert browser_errors(browser) == []
    assert shot.stat().st_size > 10_000


@pytest.mark.slow
def test_the_in_process_progress_reads_the_runs_task_instances(in_process_night):
    """What `nightly` shows while dag.test() works: Airflow's task instances of the run, from its metadata."""
    metadata = in_process_night["home"] / "airflow" / "airflow.db"
    logical_date = orchestration.logical_date_for(dt.date.fromisoformat(BASIC_DAY))
    tasks = nightly.local_task_states(metadata, nightly.DAG_ID, logical_date, since=0)
    assert len(tasks) == 24 and {t.state for t in tasks} == {"success"}  # 18 extracts, dbt_build, report ...
    assert {t.name for t in tasks} >= {"setup", "extract[enterprises]", "dbt_build", "publish", "report"}
    assert nightly.local_task_states(metadata, nightly.DAG_ID, logical_date, since=dt.datetime.now().timestamp()) == []
    assert nightly.local_task_states(metadata.with_name("missing.db"), nightly.DAG_ID, logical_date, since=0) == []


# ---------------------------------------------------------------- two hand-made publications
def _evaluation(pid, day, uscc, name, grade, total, cap=None, computed=None, basic=50, social=100):
    return (pid, day, uscc, name, None, "231100", "C13", False, "v1", total, grade, computed or grade, cap, basic,
            total - basic - social, social)


E1, E2, E3, E4, E5, E6, E7 = (f"91231100MA0000000{i}" for i in range(1, 8))


@pytest.fixture
def two_publications(warehouse_url, tmp_path, monkeypatch) -> str:
    """D0 then D1 published (run night-1); E2 fell B→C (a penalty), E3 rose C→B (tax rating, revenue), E4 fell D→E
    (capped: serious dishonesty), E6 left the population and E7 joined it."""
    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path / "home"))
    before = [("E1", E1, "A", 900), ("E2", E2, "B", 800), ("E3", E3, "C", 750), ("E4", E4, "D", 700),
              ("E5", E5, "E", 600), ("E6", E6, "C", 740)]
    with warehouse.connect(warehouse_url) as conn, conn.transaction():
        p0, p1 = (conn.execute(
            "insert into audit.publications (evaluation_date, model_version, run_id, published_by, is_current,"
            " enterprise_count, indicator_count) values (%s, 'v1', %s, 'credit_nightly', %s, 6, 0)"
            " returning publication_id", (day, run, current)).fetchone()[0]
            for day, run, current in ((D0, "night-0", False), (D1, "night-1", True)))
        rows = [_evaluation(p0, D0, uscc, f"黑河{name}公司", grade, total) for name, uscc, grade, total in before]
        rows += [_evaluation(p1, D1, E1, "黑河E1公司", "A", 900), _evaluation(p1, D1, E2, "黑河E2公司", "C", 760),
                 _evaluation(p1, D1, E3, "黑河E3公司", "B", 795),
                 _evaluation(p1, D1, E4, "黑河E4公司", "E", 690, cap="serious_dishonesty", computed="D"),
                 _evaluation(p1, D1, E5, "黑河E5公司", "E", 600), _evaluation(p1, D1, E7, "黑河E7公司", "B", 800)]
        with conn.cursor() as cur:
            cur.executemany("insert into publication.enterprise_evaluation values"
                            " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)
            points = [(p0, D0, E2, "O7", "行政处罚", 100), (p1, D1, E2, "O7", "行政处罚", 60),
                      (p0, D0, E3, "O5", "纳税信用等级", 115), (p1, D1, E3, "O5", "纳税信用等级", 140),
                      (p0, D0, E3, "O1", "营业收入", 55), (p1, D1, E3, "O1", "营业收入", 75),
                      (p0, D0, E3, "O3", "净利润率", 45), (p1, D1, E3, "O3", "净利润率", 45),
                      (p0, D0, E4, "S4", "安全生产", 30), (p1, D1, E4, "S4", "安全生产", 20)]
            cur.executemany("insert into publication.indicator_score values (%s, %s, %s, 'v1', %s, %s, null,"
                            " %s, %s, 140, false)",
                            [(p, d, u, code, name, "operations" if code[0] == "O" else "social", pts)
                             for p, d, u, code, name, pts in points])
            cur.executemany(
                "insert into publication.objection_sla (objection_id, uscc, submitted_at, due_on, status, resolved_at,"
                " working_days_used, overdue, deadline_confirmed) values (%s, %s, %s, %s, %s, %s, 0, false, true)",
                [("OB-PAST", E2, "2026-11-10T09:00+08", "2026-11-19", "processing", None),
                 ("OB-NEAR", E3, "2026-11-18T09:00+08", "2026-11-27", "submitted", None),
                 ("OB-LATER", E4, "2026-11-25T09:00+08", "2026-12-04", "submitted", None),
                 ("OB-DONE", E5, "2026-11-10T09:00+08", "2026-11-19", "upheld", "2026-11-24T09:00+08")])
        conn.execute("insert into publication.supply_chain_risk_warnings (leading_uscc, partner_uscc, relation,"
                     " warning_type, severity, detected_on, detail, warning_key, publication_id)"
                     " values (%s, %s, 'upstream', 'listed_serious_dishonesty', 'critical', %s, 'SD-1 active on D',"
                     " 'SD-1', %s)", (E1, E4, D1, p1))
        for resource, archived, quarantined in (("enterprises", 7, 0), ("penalties", 12, 2)):
            conn.execute("insert into audit.load_runs (load_id, resource, evaluation_date, attempt, window_end,"
                         " started_at, status, fetched, archived, quarantined, wall_seconds)"
                         " values (%s, %s, %s, 1, %s, now(), 'succeeded', %s, %s, %s, 0.5)",
                         (f"{D1}/{resource}/1", resource, D1, f"{D2}T00:00+08", archived + quarantined, archived,
                          quarantined))
        for n, got in enumerate(("catastrophic", "huge")):
            conn.execute("insert into audit.quarantine (resource, original, reason, first_load_id) values"
                         " ('penalties', %s, %s, %s)", (f'{{"n": {n}}}', f"field severity must be one of minor,"
                                                        f" general, severe; got '{got}'", f"{D1}/penalties/1"))
        conn.execute("insert into audit.quality_results (run_id, evaluation_date, suite, expectation, severity,"
                     " success, observed) values ('night-1', %s, 'feed', 'volume_collapsed', 'critical', true, 'no rows'),"
                     " ('night-1', %s, 'marts', 'grade_movement', 'warning', false, 'marts=0.6')", (D1, D1))
    return warehouse_url


NIGHT_1 = report.Night("night-1", tuple(
    report.TaskTime(task, index, "success", seconds) for task, index, seconds in (
        ("setup", -1, 2.0), ("extract", 0, 1.5), ("extract", 1, 2.5), ("check_feed", -1, 4.0),
        ("dbt_build", -1, 20.0), ("check_marts", -1, 3.0), ("publish", -1, 0.5))))


def test_the_report_compares_the_night_with_the_previous_publication(two_publications, browser):
    with warehouse.connect(two_publications) as conn:
        page = report.build(conn, D1, NIGHT_1)
        path = report.write(conn, D1, NIGHT_1)
    assert path == config.home() / "reports" / f"{D1}.html"
    assert page["state"] == "published" and page["previous"]["evaluation_date"] == D0
    assert page["grades"]["current"] == {"A": 1, "B": 2, "C": 1, "E": 2}
    assert page["grades"]["previous"] == {"A": 1, "B": 1, "C": 2, "D": 1, "E": 1}
    assert page["migration"] == {"up": 1, "down": 2, "same": 2, "new": 1, "gone": 1}
    # one grade step each; then the larger move of points first
    assert [(m["uscc"], m["before"], m["after"], m["delta"]) for m in page["movers"]] == [
        (E3, "C", "B", 45), (E2, "B", "C", -40), (E4, "D", "E", -10)]
    assert page["movers"][0]["why"] == ["O5 纳税信用等级 115→140 (+25)", "O1 营业收入 55→75 (+20)"]
    assert page["movers"][2]["why"] == ["封顶 cap: 严重失信主体名单 serious dishonesty list", "S4 安全生产 30→20 (-10)"]
    # D1 is a Thursday: OB-NEAR is due on Friday (1 working day left), OB-PAST was due five working days before
    assert [(o["objection_id"], o["state"], o["workdays_left"]) for o in page["objections"]] == [
        ("OB-PAST", "past", -5), ("OB-NEAR", "near", 1)]
    assert page["supply_chain"]["by_severity"]["critical"] == 1
    assert page["quarantine_reasons"] == [
        {"resource": "penalties", "rule": "field severity must be one of minor, general, severe", "count": 2}]
    assert [(s["stage"], s["tasks"], s["seconds"]) for s in page["timings"]] == [
        ("setup", 1, 2.0), ("extract", 2, 4.0), ("check_feed", 1, 4.0), ("dbt", 1, 20.0), ("check_marts", 1, 3.0),
        ("publish", 1, 0.5)]

    assert external_references(path.read_text(encoding="utf-8")) == []
    charts = open_page(browser, path)
    assert_charts_drawn(charts, {"grades", "migration", "level1", "loads", "timings"})
    texts = section_texts(browser)
    assert "黑河E3公司" in texts["movers"] and "纳税信用等级 115→140 (+25)" in texts["movers"]
    assert "OB-PAST" in texts["objections"] and "OB-NEAR" in texts["objections"] and "OB-LATER" not in texts["objections"]
    assert "listed_serious_dishonesty" in texts["supply-chain"] and "黑河E4公司" in texts["supply-chain"]
    assert "marts.grade_movement" in texts["quality"]
    screenshot(browser, "report-two-publications.png")
    assert browser_errors(browser) == []


def test_a_failed_night_gets_a_report_that_says_so(two_publications, browser):
    """The report task is the DAG's teardown: after a failed gate it writes the page of a night that published
    nothing, and the channels keep the previous publication."""
    failed = report.Night("night-2", (report.TaskTime("setup", -1, "success", 1.0),
                                      report.TaskTime("check_feed", -1, "failed", 3.0),
                                      report.TaskTime("dbt_build", -1, "upstream_failed", None)))
    with warehouse.connect(two_publications) as conn:
        conn.execute("insert into audit.task_failures (dag_id, run_id, task_id, map_index, try_number, error)"
                     " values ('credit_nightly', 'night-2', 'check_feed', -1, 1,"
                     " 'QualityGateError: feed.quarantine_rate_excessive observed enterprises=1.0')")
        conn.commit()
        path = report.write(conn, D2, failed)
    charts = open_page(browser, path)
    assert_charts_drawn(charts, {"timings"})
    texts = section_texts(browser)
    verdict = next(line for line in texts["status"].splitlines() if line.startswith("未发布"))
    assert verdict.startswith("未发布 NOT published — 本夜运行失败 the night failed: check_feed（"), verdict
    assert "1 task after it not run" in verdict and "dbt_build" not in verdict
    assert "feed.quarantine_rate_excessive observed enterprises=1.0" in texts["status"]
    current = re.search(r"publication #(\d+)（评价日 2026-11-26）", texts["status"])
    assert current, texts["status"]
    assert "Nothing published for 2026-11-27" in texts["grades"]
    assert "OB-PAST" in texts["objections"]  # still open, still late: the current publication's
    screenshot(browser, "report-failed-night.png")
    assert browser_errors(browser) == []


def test_a_report_outside_an_airflow_run_has_no_timings(two_publications):
    with warehouse.connect(two_publications) as conn:
        page = report.build(conn, D1)
    assert page["state"] == "published" and page["timings"] == [] and "timings" not in page["charts"]


def test_no_report_where_setup_never_made_the_schemas(make_database, tmp_path, monkeypatch):
    """A night refused before any schema exists (a fresh warehouse): the teardown writes nothing and does not fail."""
    url = make_database()
    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path))
    monkeypatch.setattr(orchestration, "warehouse_url", lambda: url)
    assert orchestration.report(None, {"evaluation_date": "2026-11-26"}) == {"evaluation_date": "2026-11-26",
                                                                           "report": None}
    assert not (tmp_path / "reports").exists()
