"""The data-quality gate: Great Expectations suites run against the warehouse for night D.

``check_feed`` runs before dbt (raw + audit), ``check_marts`` after it (staging + marts).
Each measures the night once in SQL (``audit.quality_metrics``), validates the measurements
with GX Core (one ephemeral context, one PostgreSQL datasource, one query asset per suite),
stores every expectation result in ``audit.quality_results``, renders Data Docs under
``config.home()/data_docs`` (GX's validation results kept in ``config.home()/gx_validations``, so
the index lists the recent runs, the newest ``DOCS_KEEP_RESULTS``) and raises ``QualityGateError``
when a critical expectation fails; failed warnings are logged and returned. The suites live in
``expectations/suites.py``, their limits in ``expectations/thresholds.toml``; both are read when a
gate runs, never at import.
"""
from __future__ import annotations

import datetime as dt
import importlib.util
import json
import logging
import os
import sys
import time
import tomllib
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from psycopg import sql
from psycopg.types.json import Jsonb

from creditplus import config, warehouse

log = logging.getLogger(__name__)

THRESHOLDS_FILE = config.EXPECTATIONS_DIR / "thresholds.toml"
SUITES_FILE = config.EXPECTATIONS_DIR / "suites.py"
DOCS_SITE = "creditplus"
MEASURE_WORK_MEM = "256MB"
MEASURE_CONNECTIONS = max(2, os.cpu_count() or 2)  # parts measured at once
# Validation results the Data Docs index lists (3 suites a night: two months); older ones are pruned so that
# rendering stays as fast on the 500th night as on the first. audit.quality_results keeps every result.
DOCS_KEEP_RESULTS = 180


class QualityGateError(RuntimeError):
    """A critical expectation failed: the night must not be published. ``result`` has them all."""

    def __init__(self, result: GateResult):
        self.result = result
        super().__init__(result.summary())


@dataclass(frozen=True)
class Outcome:
    suite: str
    expectation: str
    severity: str  # critical | warning
    success: bool
    observed: dict  # {"measured": {subject: value}, "unexpected": {subject: value}}
    expected: str  # the rule, e.g. "<= 0.25"

    @property
    def observed_text(self) -> str:
        shown = self.observed["unexpected"] if not self.success else self.observed["measured"]
        return "; ".join(f"{subject}={_plain(value)}" for subject, value in shown.items()) or "no rows"

    def describe(self) -> str:
        return f"{self.suite}.{self.expectation} [{self.severity}] observed {self.observed_text} (expected {self.expected})"


@dataclass(frozen=True)
class GateResult:
    gate: str  # feed | marts
    run_id: str
    evaluation_date: dt.date
    outcomes: tuple[Outcome, ...]
    data_docs: Path  # index.html of the Data Docs site
    timings: dict[str, float] = field(default_factory=dict)  # seconds: load (GX import), measure (SQL),
    #                                                          validate (GX + Data Docs + storing), total

    @property
    def failures(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.success and o.severity == "critical")

    @property
    def warnings(self) -> tuple[Outcome, ...]:
        return tuple(o for o in self.outcomes if not o.success and o.severity == "warning")

    @property
    def passed(self) -> bool:
        return not self.failures

    def summary(self) -> str:
        head = (f"quality gate {self.gate} for {self.evaluation_date} (run {self.run_id}): "
                f"{len(self.failures)} critical failure(s), {len(self.warnings)} warning(s)")
        lines = [head, *(o.describe() for o in self.failures + self.warnings), f"Data Docs: {self.data_docs}"]
        return "\n".join(lines)


def check_feed(evaluation_date: dt.date | str, *, warehouse_url: str | None = None, run_id: str,
               thresholds: Mapping | None = None) -> GateResult:
    """Gate before dbt: the raw archive and load runs of night D (suite ``feed``)."""
    return _gate("feed", evaluation_date, warehouse_url, run_id, thresholds)


def check_marts(evaluation_date: dt.date | str, *, warehouse_url: str | None = None, run_id: str,
                thresholds: Mapping | None = None, schema_suffix: str = "") -> GateResult:
    """Gate after dbt, before publication: suites ``staging`` and ``marts`` of evaluation date D (in the
    schemas ``staging<schema_suffix>`` and ``marts<schema_suffix>``: a re-evaluation builds aside)."""
    return _gate("marts", evaluation_date, warehouse_url, run_id, thresholds, schema_suffix)


def data_docs_dir() -> Path:
    """Where the Data Docs site is rendered (its ``index.html`` lists the recent runs)."""
    return config.home() / "data_docs"


def load_thresholds(overrides: Mapping | None = None) -> dict:
    """``thresholds.toml`` with ``overrides`` ({section: {name: value}}) applied over it."""
    merged = tomllib.loads(THRESHOLDS_FILE.read_text(encoding="utf-8"))
    for section, values in (overrides or {}).items():
        unknown = set(values) - set(merged.get(section, {}))
        if unknown:
            raise ValueError(f"unknown thresholds {section}.{', '.join(sorted(unknown))}; see {THRESHOLDS_FILE}")
        merged[section].update(values)
    return merged


# ------------------------------------------------------------------ the run
def _gate(gate: str, evaluation_date, warehouse_url, run_id: str, overrides, schema_suffix: str = "") -> GateResult:
    started = time.perf_counter()
    day = dt.date.fromisoformat(str(evaluation_date))
    thresholds = load_thresholds(overrides)
    target = warehouse_url or warehouse.url()
    suites_module = _suites_module()  # imports Great Expectations: slow once per process
    loaded = time.perf_counter()
    with warehouse.connect(target) as conn:
        published = conn.execute("select to_regclass('publication.enterprise_evaluation') is not null"
                                 " and to_regclass('audit.publications') is not null").fetchone()[0]
        suites = suites_module.build(gate, thresholds, published=published, suffix=schema_suffix)
        queries = {s.name: _metrics_query(s, run_id).as_string(conn) for s in suites}
    measured = _measure_all(target, suites, day, run_id)
    measured_at = time.perf_counter()
    results, docs = _validate(target, gate, suites, queries, run_id)
    outcomes = tuple(_outcome(suite, r, measured[suite]) for suite, r in results)
    with warehouse.connect(target) as conn:
        _store(conn, run_id, day, outcomes)
    done = time.perf_counter()
    result = GateResult(gate, run_id, day, outcomes, docs, {
        "load": round(loaded - started, 3), "measure": round(measured_at - loaded, 3),
        "validate": round(done - measured_at, 3), "total": round(done - started, 3)})
    for warning in result.warnings:
        log.warning("data-quality warning: %s", warning.describe())
    log.info("quality gate %s for %s: %d expectations, %d critical failure(s), %d warning(s) in %.1fs; Data Docs %s",
             gate, day, len(outcomes), len(result.failures), len(result.warnings), result.timings["total"], docs)
    if not result.passed:
        raise QualityGateError(result)
    return result


def _suites_module():
    """``expectations/suites.py`` (outside the package, beside its thresholds), loaded once."""
    name = "creditplus_expectation_suites"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SUITES_FILE)
        module = importlib.util.module_from_spec(spec)
        _quiet_gx()
        sys.modules[name] = module  # dataclasses look their module up while the file executes
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[name]
            raise
    return sys.modules[name]


def _measure_part(conn, part: sql.Composable, params: dict) -> list[tuple[str, dict]]:
    """The rows (subject, metrics) of one part of a suite's measurement."""
    with conn.transaction():
        conn.execute(f"set local work_mem = '{MEASURE_WORK_MEM}'")  # hash aggregates over a night in memory
        conn.execute("set local jit = off")  # compiling these wide queries costs more than it saves
        # Freshly built marts have no statistics yet: a misestimated nested loop over two CTEs of
        # 100,000 rows runs for hours; every measurement reads whole sets, so hash joins it is.
        conn.execute("set local enable_nestloop = off")
        # A plain SELECT may run in parallel workers; an INSERT ... SELECT never does.
        return conn.execute(sql.SQL("select m.subject, to_jsonb(m) - 'subject' from ({}) m").format(part),
                            params).fetchall()


def _measure_all(target: str, suites, day: dt.date, run_id: str) -> dict[str, dict]:
    """Every part of every suite measured once, on connections of their own at the same time (a core
    each); the rows kept in ``audit.quality_metrics``, and returned by suite."""
    with warehouse.connect(target) as conn:
        load_ids = conn.execute("select coalesce(array_agg(load_id), '{}') from audit.load_runs"
                                " where evaluation_date = %s", (day,)).fetchone()[0]
    parts = [(suite, part) for suite in suites for part in suite.measure]

    def measure(task) -> list[tuple[str, dict]]:
        suite, part = task
        params = {**suite.params, "evaluation_date": day, "evaluation_date_text": day.isoformat(),
                  "night_load_ids": load_ids}
        with warehouse.connect(target) as conn:
            return _measure_part(conn, part, params)

    with ThreadPoolExecutor(max_workers=min(len(parts), MEASURE_CONNECTIONS)) as pool:
        rows = list(pool.map(measure, parts))
    measured = {suite.name: {} for suite in suites}
    for (suite, _), part_rows in zip(parts, rows):
        measured[suite.name].update(part_rows)
    with warehouse.connect(target) as conn, conn.transaction():
        conn.execute("delete from audit.quality_metrics where run_id = %s and suite = any(%s)",
                     (run_id, list(measured)))
        with conn.cursor() as cur:
            cur.executemany("insert into audit.quality_metrics (run_id, evaluation_date, suite, subject, metrics)"
                            " values (%s, %s, %s, %s, %s)",
                            [(run_id, day, name, subject, Jsonb(metrics))
                             for name, subjects in measured.items() for subject, metrics in subjects.items()])
    return measured


def _metrics_query(suite, run_id: str) -> sql.Composed:
    """The suite's GX query asset: its measured rows, typed, read back from ``audit.quality_metrics``."""
    columns = sql.SQL(", ").join(
        sql.SQL("cast(metrics ->> {name} as {type}) as {col}").format(
            name=sql.Literal(name), type=sql.SQL(sql_type), col=sql.Identifier(name))
        for name, sql_type in suite.metrics.items())
    return sql.SQL("select subject, {} from audit.quality_metrics where run_id = {} and suite = {}").format(
        columns, sql.Literal(run_id), sql.Literal(suite.name))


def _quiet_gx() -> None:
    logging.getLogger("great_expectations").setLevel(logging.WARNING)


def _validate(target: str, gate: str, suites, queries: dict[str, str], run_id: str):
    """One ephemeral GX context and datasource; one query asset, batch and validation per suite;
    one checkpoint that also renders the Data Docs. Returns [(suite, result)], the index path."""
    import great_expectations as gx
    from great_expectations.checkpoint import UpdateDataDocsAction
    from great_expectations.data_context.types.base import (DataContextConfig, InMemoryStoreBackendDefaults,
                                                            ProgressBarsConfig)
    from sqlalchemy.engine import make_url

    _quiet_gx()
    docs_dir, results_dir = data_docs_dir(), config.home() / "gx_validations"
    _prune(results_dir, DOCS_KEEP_RESULTS)
    stores = InMemoryStoreBackendDefaults(init_temp_docs_sites=False)
    # Validation results persist beside the site, so its index lists the recent nights' runs.
    stores.stores[stores.validation_results_store_name]["store_backend"] = {
        "class_name": "TupleFilesystemStoreBackend", "base_directory": str(results_dir)}
    context = gx.get_context(mode="ephemeral", project_config=DataContextConfig(
        store_backend_defaults=stores, progress_bars=ProgressBarsConfig(globally=False),
        data_docs_sites={DOCS_SITE: {
            "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)}}}))
    url = make_url(target).set(drivername="postgresql+psycopg").render_as_string(hide_password=False)
    source = context.data_sources.add_postgres("warehouse", connection_string=url)
    definitions = []
    for suite in suites:
        batch = source.add_query_asset(suite.name, query=queries[suite.name]).add_batch_definition_whole_table(suite.name)
        expectations = context.suites.add(gx.ExpectationSuite(name=suite.name, expectations=list(suite.expectations)))
        definitions.append(context.validation_definitions.add(
            gx.ValidationDefinition(name=suite.name, data=batch, suite=expectations)))
    checkpoint = context.checkpoints.add(gx.Checkpoint(
        name=gate, validation_definitions=definitions,
        actions=[UpdateDataDocsAction(name="data_docs", site_names=[DOCS_SITE])],
        result_format={"result_format": "COMPLETE", "unexpected_index_column_names": ["subject"]}))
    run = checkpoint.run(run_id=gx.RunIdentifier(run_name=run_id))
    results = [(suite_result.suite_name, r) for suite_result in run.run_results.values() for r in suite_result.results]
    return results, docs_dir / "index.html"


def _prune(results_dir: Path, keep: int) -> None:
    """Delete all but the ``keep`` newest stored validation results (one JSON file each)."""
    stored = sorted(results_dir.glob("*/*/*/*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in stored[keep:]:
        old.unlink(missing_ok=True)


def _outcome(suite: str, result, measured: dict[str, dict]) -> Outcome:
    """One GX expectation result as an ``Outcome``; a raised exception is a failure."""
    config_ = result.expectation_config
    column = config_.kwargs["column"]
    unexpected = {row["subject"]: row.get(column) for row in result.result.get("unexpected_index_list") or ()}
    info = result.exception_info or {}  # one dict, or one per metric
    errors = [i.get("exception_message") for i in ([info] if "raised_exception" in info else info.values())
              if isinstance(i, dict) and i.get("raised_exception")]
    if errors:
        unexpected = {"error": "; ".join(map(str, errors))}
    return Outcome(
        suite=suite, expectation=config_.meta["name"], severity=getattr(config_.severity, "value", config_.severity),
        success=bool(result.success) and not errors, expected=config_.meta["rule"],
        observed={"measured": {subject: m.get(column) for subject, m in measured.items() if m.get(column) is not None},
                  "unexpected": unexpected})


def _store(conn, run_id: str, day: dt.date, outcomes: tuple[Outcome, ...]) -> None:
    with conn.transaction(), conn.cursor() as cur:
        cur.executemany(
            "insert into audit.quality_results"
            " (run_id, evaluation_date, suite, expectation, severity, success, observed_value, observed)"
            " values (%s, %s, %s, %s, %s, %s, %s, %s)"
            " on conflict (run_id, suite, expectation) do update set evaluation_date = excluded.evaluation_date,"
            " severity = excluded.severity, success = excluded.success, observed_value = excluded.observed_value,"
            " observed = excluded.observed, checked_at = now()",
            [(run_id, day, o.suite, o.expectation, o.severity, o.success, Jsonb(o.observed, dumps=_dumps),
              o.observed_text) for o in outcomes])


def _dumps(value) -> str:
    return json.dumps(value, default=str)


def _plain(value) -> str:
    """A measured value for a message: ratios rounded, counts as they are."""
    return f"{value:.4g}" if isinstance(value, float) else str(value)
