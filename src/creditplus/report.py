"""The nightly report: one self-contained HTML page per evaluation date, ``<home>/reports/<D>.html``.

Written by the ``report`` task of ``credit_nightly`` (``orchestration.report``) at the end of every night, the
failed ones too (the task is the DAG's teardown: it runs whatever happened upstream and leaves the run's state
to the tasks it follows). It reads the warehouse only, aggregated in SQL (a few hundred rows however large the
city): the night's publication beside the previous one (grade counts, the migration matrix, the enterprises
that moved most and the indicators that moved them, level-1 score distributions), the night's loads and
quarantine, its quality results, objections near or past their deadline, the publication's new supply-chain
warnings, and the night's task timings as Airflow records them (the task instances' durations, which the task
reads through the Task SDK; a report built outside a run has none).

Charts are matplotlib (Agg) SVGs embedded as ``data:`` images: the page loads nothing, from the internet or
elsewhere, and opens from a file, a mail attachment or a share. Chart labels are English (matplotlib's bundled
DejaVu has no CJK glyphs, and the bureau's machines need not have a CJK font either); the page's text is Chinese
first with English beside it, in the browser's own fonts.
"""
from __future__ import annotations

import base64
import csv
import datetime as dt
import io
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from creditplus import config

REPORTS_DIR = "reports"
TEMPLATE = "report.html.j2"
MOVERS = 10                    # enterprises listed as moving most
REASONS_PER_MOVER = 3          # indicators named per mover
NEAR_DEADLINE_WORKDAYS = 2     # an open objection due within this many working days after D is "near"
HISTOGRAM_BINS = 20
WARNINGS_LISTED = 20
QUARANTINE_REASONS = 12
STAGES = ("setup", "extract", "check_feed", "dbt", "check_marts", "publish", "report")
SEVERITIES = ("critical", "high", "medium", "low")
SUITES = ("feed", "staging", "marts")  # in the order the night's gates run them
# The three level-1 scores are columns of the publication (their maxima come from the model's seeds).
LEVEL1 = {"basic": ("基本情况", "basic_score"), "operations": ("经营状况", "operations_score"),
          "social": ("社会责任", "social_score")}
CAPS = {"serious_dishonesty": "严重失信主体名单 serious dishonesty list",
        "dishonest_debtor": "失信被执行人 dishonest judgment debtor"}
COLORS = {"current": "#1f5fa8", "previous": "#a7b4c2", "quarantined": "#c0392b", "archived": "#1f5fa8",
          "stage": "#2e7d5b"}


def reports_dir() -> Path:
    return config.home() / REPORTS_DIR


def path_for(day: dt.date) -> Path:
    """Where the report of evaluation date ``day`` is (and is rewritten by a rerun of the night)."""
    return reports_dir() / f"{day.isoformat()}.html"


# ---------------------------------------------------------------- what Airflow says of the run
@dataclass(frozen=True)
class TaskTime:
    task_id: str
    map_index: int
    state: str
    seconds: float | None


@dataclass(frozen=True)
class Night:
    """The run as Airflow records it when the report task runs: every task before it has ended."""

    run_id: str | None
    tasks: tuple[TaskTime, ...] = ()

    @property
    def failed(self) -> list[str]:
        """The tasks that failed (a mapped task once)."""
        return sorted({t.task_id for t in self.tasks if t.state == "failed"})

    @property
    def not_run(self) -> int:
        """Task instances not run because a task before them failed."""
        return sum(t.state == "upstream_failed" for t in self.tasks)

    @classmethod
    def from_breadcrumbs(cls, run_id: str | None, breadcrumbs) -> "Night":
        """From the Task SDK's task breadcrumbs of the run (task_id, map_index, state, duration of every
        task instance in a terminal state)."""
        tasks = [TaskTime(b["task_id"], int(b.get("map_index", -1)), str(getattr(b["state"], "value", b["state"])),
                          b.get("duration")) for b in breadcrumbs]
        return cls(run_id, tuple(sorted(tasks, key=lambda t: (t.task_id, t.map_index))))


def stage_of(task_id: str) -> str:
    """A task's stage: the task group (Cosmos's ``dbt.*``), or the task; the in-process ``dbt_build`` is dbt."""
    head = task_id.split(".", 1)[0]
    return "dbt" if head == "dbt_build" else head


def stage_timings(night: Night | None) -> list[dict]:
    """Per stage, in DAG order: its tasks, their summed durations and the longest (seconds)."""
    if night is None:
        return []
    stages: dict[str, list[TaskTime]] = {}
    for t in night.tasks:
        stages.setdefault(stage_of(t.task_id), []).append(t)
    order = {name: i for i, name in enumerate(STAGES)}
    rows = []
    for name in sorted(stages, key=lambda s: (order.get(s, len(order)), s)):
        tasks = stages[name]
        times = [t.seconds for t in tasks if t.seconds is not None]
        states = sorted({t.state for t in tasks})
        rows.append({"stage": name, "tasks": len(tasks), "seconds": sum(times), "longest": max(times, default=0.0),
                     "states": ", ".join(states), "ok": states == ["success"]})
    return rows


# ---------------------------------------------------------------- reading the warehouse
def _exists(conn, relation: str) -> bool:
    return conn.execute("select to_regclass(%s) is not null", (relation,)).fetchone()[0]


def _publication(conn, where: str, params) -> dict | None:
    row = conn.execute(
        "select publication_id, evaluation_date, model_version, run_id, published_at, is_current, enterprise_count"
        f" from audit.publications where {where}", params).fetchone()
    if row is None:
        return None
    keys = ("publication_id", "evaluation_date", "model_version", "run_id", "published_at", "is_current",
            "enterprise_count")
    return dict(zip(keys, row))


def publications(conn, day: dt.date, night: Night | None) -> tuple[dict | None, dict | None, dict | None]:
    """(the night's publication, the one before it, the current one). The night's: the latest of ``day``
    (of this run, when the run is known: a failed rerun of a published day published nothing). The previous:
    as ``publication.current_publication`` picks it, the latest of an earlier day made before it."""
    current = _publication(conn, "is_current", ())
    if night is not None and night.run_id is not None:
        published = _publication(conn, "evaluation_date = %s and run_id = %s order by publication_id desc limit 1",
                                 (day, night.run_id))
    else:
        published = _publication(conn, "evaluation_date = %s order by publication_id desc limit 1", (day,))
    previous = None
    if published is not None:
        previous = _publication(conn, "publication_id < %s and evaluation_date < %s"
                                      " order by evaluation_date desc, publication_id desc limit 1",
                                (published["publication_id"], published["evaluation_date"]))
    return published, previous, current


def grade_scale(conn, model_version: str | None) -> list[tuple[str, int]]:
    """The model's grades, best first, with their lowest total (the scoring seed in the warehouse, else the
    seed file)."""
    if model_version and _exists(conn, "staging.scoring_grades"):
        rows = conn.execute("select grade, min_total from staging.scoring_grades where model_version = %s"
                            " order by grade_rank", (model_version,)).fetchall()
        if rows:
            return [(g, int(m)) for g, m in rows]
    with open(config.DBT_PROJECT_DIR / "seeds" / "scoring_grades.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["model_version"] == (model_version or "v1")]
    return [(r["grade"], int(r["min_total"])) for r in sorted(rows, key=lambda r: int(r["grade_rank"]))]


def level1_maxima(conn, model_version: str | None) -> dict[str, int]:
    maxima: dict[str, int] = {}
    if model_version and _exists(conn, "staging.scoring_indicators"):
        maxima = {level: int(points) for level, points in conn.execute(
            "select level1, sum(max_points) from staging.scoring_indicators where model_version = %s"
            " group by level1", (model_version,))}
    if set(maxima) != set(LEVEL1):
        with open(config.DBT_PROJECT_DIR / "seeds" / "scoring_indicators.csv", newline="") as f:
            maxima = {}
            for r in csv.DictReader(f):
                if r["model_version"] == (model_version or "v1"):
                    maxima[r["level1"]] = maxima.get(r["level1"], 0) + int(r["max_points"])
    return maxima


def grade_counts(conn, publication_id: int) -> dict[str, int]:
    return dict(conn.execute("select grade, count(*) from publication.enterprise_evaluation"
                             " where publication_id = %s group by grade", (publication_id,)).fetchall())


def migration(conn, current: int, previous: int) -> dict[tuple[str | None, str | None], int]:
    """(previous grade, current grade) -> enterprises; None: not graded in that publication."""
    return {(p, c): n for p, c, n in conn.execute(
        "select p.grade, c.grade, count(*)"
        "  from (select uscc, grade from publication.enterprise_evaluation where publication_id = %s) c"
        "  full join (select uscc, grade from publication.enterprise_evaluation where publication_id = %s) p"
        "    using (uscc)"
        " group by 1, 2", (current, previous))}


def movers(conn, current: int, previous: int, grades: list[str]) -> list[dict]:
    """The enterprises that moved most (grades moved first, then points), each with the indicators whose points
    changed most and a change of cap."""
    rows = conn.execute(
        "select c.uscc, c.enterprise_name, p.grade, c.grade, p.total_score, c.total_score, p.cap_reason, c.cap_reason"
        "  from publication.enterprise_evaluation c"
        "  join publication.enterprise_evaluation p on p.publication_id = %(previous)s and p.uscc = c.uscc"
        " where c.publication_id = %(current)s and (c.grade <> p.grade or c.total_score <> p.total_score)"
        " order by abs(array_position(%(grades)s::text[], c.grade) - array_position(%(grades)s::text[], p.grade))"
        "          desc nulls last, abs(c.total_score - p.total_score) desc, c.uscc"
        " limit %(limit)s", {"current": current, "previous": previous, "grades": grades, "limit": MOVERS}).fetchall()
    if not rows:
        return []
    reasons: dict[str, list[dict]] = {}
    for uscc, code, name, before, after, objected in conn.execute(
            "select c.uscc, c.indicator_code, c.indicator_name, p.points, c.points, c.under_objection"
            "  from publication.indicator_score c"
            "  left join publication.indicator_score p"
            "         on p.publication_id = %(previous)s and p.uscc = c.uscc and p.indicator_code = c.indicator_code"
            " where c.publication_id = %(current)s and c.uscc = any(%(usccs)s) and c.points is distinct from p.points"
            " order by c.uscc, abs(c.points - coalesce(p.points, 0)) desc, c.indicator_code",
            {"current": current, "previous": previous, "usccs": [r[0] for r in rows]}):
        found = reasons.setdefault(uscc, [])
        if len(found) < REASONS_PER_MOVER:
            found.append({"code": code, "name": name, "before": before, "after": after,
                          "delta": after - (before or 0), "under_objection": objected})
    result = []
    for uscc, name, before, after, score_before, score_after, cap_before, cap_after in rows:
        why = [f"{r['code']} {r['name']} {r['before']}→{r['after']} ({r['delta']:+d})"
               + ("，异议中 under objection" if r["under_objection"] else "") for r in reasons.get(uscc, [])]
        if cap_after != cap_before:
            why.insert(0, f"封顶 cap: {CAPS.get(cap_after, cap_after)}" if cap_after else
                       f"封顶解除 cap lifted: {CAPS.get(cap_before, cap_before)}")
        result.append({"uscc": uscc, "name": name, "before": before, "after": after, "score_before": score_before,
                       "score_after": score_after, "delta": score_after - score_before, "why": why})
    return result


def level1_histograms(conn, publication_id: int, maxima: dict[str, int]) -> dict[str, dict]:
    """Per level-1 score: counts in ``HISTOGRAM_BINS`` equal bins of 0..max, the mean and the median."""
    levels = list(LEVEL1)
    scores = ", ".join(f"('{level}', e.{column})" for level, (_, column) in LEVEL1.items())  # constants only
    bins = {level: [0] * HISTOGRAM_BINS for level in levels}
    for level, bucket, n in conn.execute(
            "select v.level1, least(greatest(width_bucket(v.score, 0, m.max_points, %(bins)s), 1), %(bins)s), count(*)"
            "  from publication.enterprise_evaluation e"
            f" cross join lateral (values {scores}) v(level1, score)"
            "  join unnest(%(levels)s::text[], %(maxima)s::int[]) m(level1, max_points) using (level1)"
            " where e.publication_id = %(publication)s group by 1, 2",
            {"bins": HISTOGRAM_BINS, "levels": levels, "maxima": [maxima[level] for level in levels],
             "publication": publication_id}):
        bins[level][bucket - 1] = n
    measures = ", ".join(f"avg({column}), percentile_cont(0.5) within group (order by {column})"
                         for _, column in LEVEL1.values())
    stats = conn.execute(f"select {measures} from publication.enterprise_evaluation where publication_id = %s",
                         (publication_id,)).fetchone()
    return {level: {"bins": bins[level], "max": maxima[level],
                    "mean": float(stats[2 * i]) if stats[2 * i] is not None else None,
                    "median": float(stats[2 * i + 1]) if stats[2 * i + 1] is not None else None}
            for i, level in enumerate(levels)}


def loads(conn, day: dt.date) -> list[dict]:
    keys = ("resource", "status", "attempt", "fetched", "archived", "duplicates", "quarantined", "late", "retries",
            "wall_seconds", "error")
    rows = conn.execute(f"select {', '.join(keys)} from audit.latest_load_runs where evaluation_date = %s"
                        " order by resource", (day,)).fetchall()
    return [dict(zip(keys, r)) for r in rows]


def quarantine_reasons(conn, day: dt.date) -> list[dict]:
    """Why the night's refused versions were refused: per resource and rule (the value quoted after
    "; got" left out), most frequent first."""
    rows = conn.execute(
        "select resource, split_part(reason, '; got', 1) as rule, count(*) from audit.quarantine"
        " where first_load_id like %s group by 1, 2 order by 3 desc, 1, 2 limit %s",
        (f"{day.isoformat()}/%", QUARANTINE_REASONS)).fetchall()
    return [{"resource": r, "rule": rule, "count": n} for r, rule, n in rows]


def quality(conn, day: dt.date, run_id: str | None) -> list[dict]:
    """The night's expectation results: the run's, else each suite's latest run for the date."""
    where = "run_id = %s" if run_id else (
        "evaluation_date = %s and run_id = (select run_id from audit.quality_results l where l.evaluation_date ="
        " r.evaluation_date and l.suite = r.suite order by checked_at desc limit 1)")
    rows = conn.execute(
        f"select suite, expectation, severity, success, observed from audit.quality_results r where {where}"
        " order by success, severity, suite, expectation", (run_id or day,)).fetchall()
    return [{"suite": s, "expectation": e, "severity": sev, "success": ok, "observed": obs}
            for s, e, sev, ok, obs in rows]


def task_failures(conn, run_id: str | None) -> list[dict]:
    from creditplus.nightly import DAG_ID
    from creditplus.orchestration import last_errors

    errors = last_errors(conn, DAG_ID, run_id) if run_id else {}
    return [{"task": task_id if map_index < 0 else f"{task_id}[{map_index}]", "error": error}
            for (task_id, map_index), error in sorted(errors.items())]


def objections(conn, day: dt.date, current: dict | None) -> list[dict]:
    """Open objections (as the current publication computed them) past their deadline on ``day`` or due within
    ``NEAR_DEADLINE_WORKDAYS`` working days after it; the most urgent first."""
    from creditplus import workdays

    if not _exists(conn, "publication.objection_sla"):
        return []
    rows = conn.execute(
        "select o.objection_id, o.uscc, e.enterprise_name, o.submitted_at, o.due_on, o.status, o.working_days_used,"
        "       o.deadline_confirmed"
        "  from publication.objection_sla o"
        "  left join publication.enterprise_evaluation e on e.publication_id = %s and e.uscc = o.uscc"
        " where o.status in ('submitted', 'processing') order by o.due_on, o.objection_id",
        (current["publication_id"] if current else None,)).fetchall()
    found = []
    for oid, uscc, name, submitted, due, status, used, confirmed in rows:
        if due < day:
            left, state = -_workdays(workdays, due, day), "past"
        else:
            left, state = _workdays(workdays, day, due), "near"
            if left > NEAR_DEADLINE_WORKDAYS:
                continue
        found.append({"objection_id": oid, "uscc": uscc, "name": name, "submitted_on": submitted.astimezone(config.CST).date(),
                      "due_on": due, "status": status, "working_days_used": used, "workdays_left": left,
                      "state": state, "confirmed": confirmed})
    return found


def _workdays(workdays, start_exclusive: dt.date, end_inclusive: dt.date) -> int:
    try:
        return workdays.workdays_between(start_exclusive, end_inclusive)[0]
    except Exception:  # noqa: BLE001 - a calendar that cannot count: calendar days, still ordered
        return (end_inclusive - start_exclusive).days


def supply_chain(conn, publication_id: int) -> dict:
    """The warnings the publication raised: counts by severity and type, and the most severe, named."""
    counts = conn.execute(
        "select severity, warning_type, count(*) from publication.supply_chain_risk_warnings"
        " where publication_id = %s group by 1, 2", (publication_id,)).fetchall()
    listed = conn.execute(
        "select w.severity, w.warning_type, w.relation, w.leading_uscc, l.enterprise_name, w.partner_uscc,"
        "       p.enterprise_name, w.detail"
        "  from publication.supply_chain_risk_warnings w"
        "  left join publication.enterprise_evaluation l on l.publication_id = w.publication_id"
        "        and l.uscc = w.leading_uscc"
        "  left join publication.enterprise_evaluation p on p.publication_id = w.publication_id"
        "        and p.uscc = w.partner_uscc"
        " where w.publication_id = %s"
        " order by array_position(%s::text[], w.severity), w.warning_type, w.leading_uscc, w.partner_uscc limit %s",
        (publication_id, list(SEVERITIES), WARNINGS_LISTED)).fetchall()
    by_severity = {s: 0 for s in SEVERITIES}
    by_type: dict[str, int] = {}
    for severity, kind, n in counts:
        by_severity[severity] = by_severity.get(severity, 0) + n
        by_type[kind] = by_type.get(kind, 0) + n
    keys = ("severity", "warning_type", "relation", "leading_uscc", "leading_name", "partner_uscc", "partner_name",
            "detail")
    return {"total": sum(by_severity.values()), "by_severity": by_severity,
            "by_type": sorted(by_type.items(), key=lambda kv: (-kv[1], kv[0])),
            "listed": [dict(zip(keys, r)) for r in listed]}


# ---------------------------------------------------------------- charts (matplotlib, Agg, SVG)
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update({"svg.hashsalt": "creditplus-report", "font.family": "DejaVu Sans", "font.size": 9,
                         "axes.spines.top": False, "axes.spines.right": False, "figure.dpi": 100})
    return plt


def _svg(plt, fig) -> str:
    """The figure as a ``data:`` URI of its SVG (text drawn as paths: no font needed where it is opened)."""
    out = io.BytesIO()
    fig.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    plt.close(fig)
    return "data:image/svg+xml;base64," + base64.b64encode(out.getvalue()).decode("ascii")


def chart_grades(plt, grades: list[str], current: dict, previous: dict | None, labels: tuple[str, str]) -> str:
    from matplotlib.ticker import MaxNLocator

    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    x = range(len(grades))
    width = 0.38 if previous is not None else 0.6
    series = [(labels[0], current, COLORS["current"])]
    if previous is not None:
        series.insert(0, (labels[1], previous, COLORS["previous"]))
    for i, (label, counts, color) in enumerate(series):
        offset = (i - (len(series) - 1) / 2) * width
        bars = ax.bar([p + offset for p in x], [counts.get(g, 0) for g in grades], width, label=label, color=color)
        ax.bar_label(bars, padding=2, fontsize=8)
    ax.set_xticks(list(x), grades)
    ax.set_ylabel("enterprises")
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.margins(y=0.12)
    ax.legend(frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=len(series))
    return _svg(plt, fig)


def chart_migration(plt, grades: list[str], matrix: dict) -> str:
    import numpy as np
    from matplotlib.colors import PowerNorm

    rows = grades + ["new"]     # previous grade (or not graded before)
    cols = grades + ["gone"]    # current grade (or not graded now)
    data = np.zeros((len(rows), len(cols)), dtype=int)
    for (before, after), n in matrix.items():
        data[rows.index(before if before is not None else "new"), cols.index(after if after is not None else "gone")] += n
    fig, ax = plt.subplots(figsize=(5.2, 4.4))
    ax.imshow(data, cmap="Blues", norm=PowerNorm(gamma=0.35, vmin=0, vmax=max(1, int(data.max()))))
    ax.set_xticks(range(len(cols)), cols)
    ax.set_yticks(range(len(rows)), rows)
    ax.set_xlabel("this publication")
    ax.set_ylabel("previous publication")
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    threshold = data.max() * 0.35 if data.max() else 1
    for i in range(len(rows)):
        for j in range(len(cols)):
            if data[i, j] or (i < len(grades) and i == j):
                ax.text(j, i, str(data[i, j]), ha="center", va="center", fontsize=9,
                        color="white" if data[i, j] > threshold else "#1b2733",
                        fontweight="bold" if i == j else "normal")
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    return _svg(plt, fig)


def chart_level1(plt, current: dict, previous: dict | None) -> str:
    fig, axes = plt.subplots(1, len(LEVEL1), figsize=(9.6, 2.6), sharey=False)
    for ax, level in zip(axes, LEVEL1):
        cur = current[level]
        width = cur["max"] / HISTOGRAM_BINS
        edges = [i * width for i in range(HISTOGRAM_BINS)]
        ax.bar(edges, cur["bins"], width=width, align="edge", color=COLORS["current"], label="this publication",
               linewidth=0, alpha=0.85)
        if previous is not None:
            ax.step([*edges, cur["max"]], [*previous[level]["bins"], previous[level]["bins"][-1]], where="post",
                    color="#1b2733", linewidth=1.2, label="previous", zorder=3)
        if cur["median"] is not None:
            ax.axvline(cur["median"], color="#e08a00", linewidth=1.2, linestyle="--", label="median")
        ax.set_xlim(0, cur["max"])
        ax.set_title(f"{level} (max {cur['max']})", fontsize=9)
        ax.set_xlabel("points")
    axes[0].set_ylabel("enterprises")
    axes[-1].legend(frameon=False, fontsize=7, loc="upper left")
    fig.tight_layout()
    return _svg(plt, fig)


def chart_loads(plt, rows: list[dict]) -> str:
    from matplotlib.ticker import MaxNLocator

    names = [r["resource"] for r in rows][::-1]
    fig, (left, right) = plt.subplots(1, 2, figsize=(9.6, 0.22 * len(rows) + 0.9), sharey=True,
                                      gridspec_kw={"width_ratios": [3, 2]})
    for ax, key, title, margin in ((left, "archived", "archived record versions", 0.15),
                                   (right, "quarantined", "quarantined", 0.2)):
        values = [r[key] for r in rows][::-1]
        bars = ax.barh(names, values, color=COLORS[key], height=0.7)
        ax.bar_label(bars, padding=2, fontsize=7)
        ax.set_title(title, fontsize=9)
        ax.set_xlim(0, max(1, max(values, default=0)) * (1 + margin))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.tick_params(axis="y", labelsize=8)
    fig.tight_layout()
    return _svg(plt, fig)


def chart_timings(plt, stages: list[dict]) -> str:
    """Per stage, the sum of its tasks' durations (light) and its longest task (dark): tasks of one stage may run
    at once (the extract pool; under the scheduler, the dbt node tasks watch the one build), so the stage's wall
    time lies between the two."""
    names = [s["stage"] + (f" ({s['tasks']} tasks)" if s["tasks"] > 1 else "") for s in stages][::-1]
    total = [s["seconds"] for s in stages][::-1]
    longest = [s["longest"] for s in stages][::-1]
    failed = [not s["ok"] for s in stages][::-1]
    fig, ax = plt.subplots(figsize=(6.4, 0.34 * len(stages) + 1.0))
    ax.barh(names, total, height=0.7, color=["#f0b7b0" if f else "#a9d3bf" for f in failed], label="sum of its tasks")
    bars = ax.barh(names, longest, height=0.36, color=[COLORS["quarantined"] if f else COLORS["stage"] for f in failed],
                   label="longest task")
    for y, (whole, long) in enumerate(zip(total, longest)):
        ax.text(whole, y, f" {whole:.1f} s" if whole == long else f" {whole:.1f} s (longest {long:.1f} s)",
                va="center", fontsize=8)
    ax.set_xlabel("seconds")
    ax.set_xlim(0, max(total, default=1) * 1.45 or 1)
    ax.legend(handles=[ax.containers[0], bars], frameon=False, loc="lower center", bbox_to_anchor=(0.5, 1.0), ncol=2,
              fontsize=8)
    return _svg(plt, fig)


# ---------------------------------------------------------------- the page
def build(conn, day: dt.date, night: Night | None = None) -> dict:
    """Everything the template shows, charts rendered."""
    from creditplus import quality as quality_gate

    published, previous, current = publications(conn, day, night)
    failed = bool(night and (night.failed or night.not_run))
    failures = task_failures(conn, night.run_id if night else None)
    if published is not None:
        state = "published"
    elif failed:
        state = "failed"
    else:
        state = "not_published"
    version = (published or current or {}).get("model_version")
    scale = grade_scale(conn, version)
    grades = [g for g, _ in scale]
    plt = _pyplot()
    charts: dict[str, str] = {}
    page: dict = {
        "day": day.isoformat(), "state": state, "night": night, "failed_tasks": night.failed if night else [],
        "not_run": night.not_run if night else 0,
        "failures": failures, "published": published, "previous": previous, "current": current,
        "generated_at": dt.datetime.now(config.CST).strftime("%Y-%m-%d %H:%M:%S +08:00"),
        "scale": scale, "near_workdays": NEAR_DEADLINE_WORKDAYS, "movers_limit": MOVERS, "charts": charts,
        "level1_names": {level: zh for level, (zh, _) in LEVEL1.items()}, "caps": CAPS,
    }
    if published is not None:
        pid = published["publication_id"]
        counts = grade_counts(conn, pid)
        before = grade_counts(conn, previous["publication_id"]) if previous else None
        page["grades"] = {"grades": grades, "current": counts, "previous": before, "total": sum(counts.values()),
                          "previous_total": sum(before.values()) if before else None}
        charts["grades"] = chart_grades(plt, grades, counts, before,
                                        (f"{day} (#{pid})", f"{previous['evaluation_date']} (#{previous['publication_id']})"
                                         if previous else ""))
        maxima = level1_maxima(conn, version)
        hist = level1_histograms(conn, pid, maxima)
        hist_before = level1_histograms(conn, previous["publication_id"], maxima) if previous else None
        page["level1"] = hist
        charts["level1"] = chart_level1(plt, hist, hist_before)
        if previous is not None:
            matrix = migration(conn, pid, previous["publication_id"])
            rank = {g: i for i, g in enumerate(grades)}
            moved = {"up": 0, "down": 0, "same": 0, "new": 0, "gone": 0}
            for (b, a), n in matrix.items():
                key = ("new" if b is None else "gone" if a is None else "same" if a == b
                       else "up" if rank.get(a, 0) < rank.get(b, 0) else "down")
                moved[key] += n
            page["migration"] = moved
            charts["migration"] = chart_migration(plt, grades, matrix)
            page["movers"] = movers(conn, pid, previous["publication_id"], grades)
        page["supply_chain"] = supply_chain(conn, pid)
    page["loads"] = loads(conn, day)
    if page["loads"]:
        page["loads_total"] = {k: sum(r[k] or 0 for r in page["loads"])
                               for k in ("fetched", "archived", "duplicates", "quarantined", "late")}
        page["quarantine_reasons"] = quarantine_reasons(conn, day)
        charts["loads"] = chart_loads(plt, page["loads"])
    results = quality(conn, day, night.run_id if night else None) if _exists(conn, "audit.quality_results") else []
    page["quality"] = results
    suites: dict[str, dict] = {}
    for r in results:
        s = suites.setdefault(r["suite"], {"passed": 0, "warning": 0, "critical": 0})
        s["passed" if r["success"] else r["severity"]] += 1
    order = {suite: i for i, suite in enumerate(SUITES)}
    page["quality_suites"] = dict(sorted(suites.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    page["objections"] = objections(conn, day, current)
    page["timings"] = stage_timings(night)
    if page["timings"]:
        charts["timings"] = chart_timings(plt, page["timings"])
    docs = quality_gate.data_docs_dir() / "index.html"
    page["data_docs"] = os.path.relpath(docs, reports_dir()) if docs.exists() else None
    return page


def _umask() -> int:
    """The process's umask, read without changing it (Linux); else the strictest."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("Umask:"):
                return int(line.split()[1], 8)
    except OSError:
        pass
    return 0o077


def render(page: dict) -> str:
    import jinja2

    env = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["n"] = lambda v: "—" if v is None else f"{v:,}" if isinstance(v, int) else f"{v:,.1f}"
    env.filters["s"] = lambda v: "—" if v is None else f"{v:.2f}" if v < 10 else f"{v:,.1f}"
    env.filters["cst"] = lambda ts: ts.astimezone(config.CST).strftime("%Y-%m-%d %H:%M:%S +08:00")
    return env.get_template(TEMPLATE).render(**page)


def write(conn, day: dt.date, night: Night | None = None) -> Path:
    """Render the report of ``day`` and put it at ``path_for(day)`` atomically (a reader never sees half a page);
    the file's mode follows the process's umask (0600 under ``creditplus``, which sets 077)."""
    html = render(build(conn, day, night))
    target = path_for(day)
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(html)
            out.flush()
            os.fsync(out.fileno())
        os.chmod(tmp, 0o666 & ~_umask())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target
