"""The data-quality suites of the nightly gate, defined once, built at task time.

A suite is two things: ``measure``, one SQL query that measures the night in the warehouse
(one row per subject — a resource, or ``marts`` — with a ``subject`` column and one column
per metric; parameters: the suite's thresholds, ``evaluation_date``, ``evaluation_date_text``
and ``night_load_ids``, the load ids of D's runs), and ``expectations``, Great
Expectations checks on those few rows (each with a ``severity`` and ``meta.name``). The
measurements run once in PostgreSQL; GX never reads the data itself. Per-resource SQL is
generated from the registry (``creditplus.resources``); limits come from ``thresholds.toml``.

``build(gate, thresholds, published=...)`` returns the suites of a gate: ``feed`` (raw and
audit of night D, before dbt) or ``marts`` (staging and marts, after dbt).
"""
from __future__ import annotations

from dataclasses import dataclass

import great_expectations.expectations as gxe
from psycopg import sql

from creditplus import resources as R

CRITICAL, WARNING = "critical", "warning"
SUBJECT = "subject"  # the column naming the row of a measurement


@dataclass(frozen=True)
class Suite:
    name: str
    measure: tuple[sql.Composable, ...]  # parts (SELECTs of some subjects' rows), measured at the same time
    metrics: dict[str, str]  # metric column -> SQL type
    expectations: tuple[gxe.Expectation, ...]
    params: dict  # the thresholds the measurement reads


def _described(name: str, column: str, rule: str, severity: str, description: str) -> dict:
    """``meta`` (name and rule, for the gate's messages) and ``description`` (for Data Docs)."""
    return {"meta": {"name": name, "rule": rule}, "severity": severity,
            "description": f"{name}: {description}; {column} {rule} per {SUBJECT} ({severity})"}


def _within(name: str, column: str, severity: str, description: str, *, low=None, high=None) -> gxe.Expectation:
    rule = f"= {low}" if low == high else f">= {low}" if high is None else f"<= {high}" if low is None else f"in {low}..{high}"
    return gxe.ExpectColumnValuesToBeBetween(column=column, min_value=low, max_value=high,
                                             **_described(name, column, rule, severity, description))


def _none(name: str, column: str, severity: str, description: str) -> gxe.Expectation:
    """No row of the measurement may count any (``column`` = 0)."""
    return _within(name, column, severity, description, low=0, high=0)


def _any(conditions: list[sql.Composable]) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(" or ").join(conditions)) if conditions else sql.SQL("false")


def _literals(values) -> sql.Composable:
    return sql.SQL(", ").join(map(sql.Literal, values))


def _enterprise_refs(res: R.Resource) -> list[tuple[R.Field, sql.Composable]]:
    """Fields of ``res`` that name an enterprise, each with the condition under which it does."""
    refs = []
    for f in res.fields:
        if f.kind == R.USCC and res.name != "enterprises":
            refs.append((f, sql.SQL("true")))
        elif f.kind == R.SUBJECT_ID:
            refs.append((f, sql.SQL("subject_type = 'enterprise'")))
    return refs


# ------------------------------------------------------------------ feed: raw + audit of night D
FEED_METRICS = {
    "fetched": "bigint", "quarantined": "bigint", "history_nights": "bigint", "median_fetched": "float8",
    "volume_ratio": "float8", "quarantine_rate": "float8", "versions": "bigint", "duplicate_versions": "bigint",
    "invalid_uscc": "bigint", "invalid_amounts": "bigint", "implausible_amounts": "bigint", "future_dates": "bigint",
    "early_dates": "bigint", "behind_publication": "bigint",
}


# Raw versions archived by D's loads (%(night_load_ids)s: a literal array, so the planner sees how many rows match).
TONIGHT = sql.SQL("_load_id = any(%(night_load_ids)s)")


def _night(res: R.Resource) -> sql.Composable:
    return sql.SQL("raw.{} where {}").format(sql.Identifier(res.name), TONIGHT)


def _value(res: R.Resource, f: R.Field) -> sql.Composable:
    """A field as received: the key column, else the text in the record."""
    return sql.Identifier(f.name) if f.name in res.key else sql.SQL("(record ->> {})").format(sql.Literal(f.name))


# The latest publication: when, and its cutoff (D+1 00:00 +08:00). A version archived after it that is older
# than its cutoff was missing from what it published.
LATEST_PUBLICATION = sql.SQL(
    "select published_at as at, (evaluation_date + 1)::timestamp at time zone 'Asia/Shanghai' as cutoff"
    " from audit.publications order by published_at desc limit 1")


def _raw_checks(res: R.Resource, t: dict) -> sql.Composable:
    """Counts over ``res``'s versions of night D: versions, duplicated versions, distinct malformed credit
    codes naming an enterprise, bad amounts, dates out of range (ISO text compares like the date)."""
    amounts, implausible, future, early, codes = [], [], [], [], []
    for f in res.fields:
        value = _value(res, f)
        if f.kind in (R.USCC, R.SUBJECT_ID):
            # Each distinct code checked once: a hash over the night's codes, then ~4 µs per code
            # (OFFSET 0 keeps PostgreSQL from pushing the check below the DISTINCT, onto every row).
            enterprise = sql.SQL(" and record ->> 'subject_type' = 'enterprise'" if f.kind == R.SUBJECT_ID else "")
            codes.append(sql.SQL("(select count(*) from (select distinct {} as code from {}{} offset 0) d"
                                 " where not audit.uscc_is_valid(code))").format(value, _night(res), enterprise))
        elif f.kind in (R.MONEY, R.SIGNED_MONEY):  # a number (signed: a profit may be a loss), and plausible
            number = sql.Literal(r"^%s[0-9]+(\.[0-9]+)?$" % ("-?" if f.kind == R.SIGNED_MONEY else ""))
            amounts.append(sql.SQL("{} !~ {}").format(value, number))
            implausible.append(sql.SQL("{} ~ %(implausible_amount)s").format(value))
        elif f.kind == R.COUNT:
            amounts.append(sql.SQL("{} !~ '^[0-9]+$'").format(value))
        elif f.kind == R.DATE:
            early.append(sql.SQL("{} < %(earliest_date)s").format(value))
            if f.name not in t["future_dates_allowed"]:
                future.append(sql.SQL("{} > %(evaluation_date_text)s").format(value))
        elif f.kind == R.MONTH:
            early.append(sql.SQL("{} < left(%(earliest_date)s, 7)").format(value))
            future.append(sql.SQL("{} > left(%(evaluation_date_text)s, 7)").format(value))
    keys = [*res.key, "updated_at"]
    # A unique index on key + updated_at (warehouse setup creates it) rules duplicates out; without
    # one, the night's versions are grouped and counted (a CASE evaluates only the branch it takes).
    duplicates = sql.SQL(
        "case when exists (select 1 from pg_index i where i.indrelid = {rel}::regclass and i.indisunique"
        " and (select array_agg(a.attname::text order by a.attname) from pg_attribute a"
        "      where a.attrelid = i.indrelid and a.attnum = any(i.indkey)) = {sorted_keys})"
        " then 0 else (select coalesce(sum(n - 1), 0) from (select count(*) as n from {night} group by {keys}"
        " having count(*) > 1) d) end").format(
        rel=sql.Literal(f"raw.{res.name}"), sorted_keys=sql.Literal(sorted(keys)), night=_night(res),
        keys=sql.SQL(", ").join(map(sql.Identifier, keys)))
    return sql.SQL(
        "select {name} as resource, count(*) as versions, {duplicates} as duplicate_versions,"
        " {codes} as invalid_uscc, count(*) filter (where {amounts}) as invalid_amounts,"
        " count(*) filter (where {implausible}) as implausible_amounts,"
        " count(*) filter (where {future}) as future_dates, count(*) filter (where {early}) as early_dates,"
        " count(*) filter (where _loaded_at > published.at and updated_at < published.cutoff) as behind_publication"
        " from raw.{table} left join ({published}) published on true where {tonight}"
    ).format(name=sql.Literal(res.name), duplicates=duplicates, table=sql.Identifier(res.name), tonight=TONIGHT,
             published=LATEST_PUBLICATION,
             codes=sql.SQL(" + ").join(codes) if codes else sql.SQL("0"),
             amounts=_any(amounts), implausible=_any(implausible),
             future=_any(future), early=_any(early))


def feed(t: dict) -> Suite:
    """Night D as extracted: every resource loaded, its volume against its recent nights, its
    quarantine rate, and the versions archived that night (unique, well-formed, dates in range);
    measured by resource (one part each: a first night re-reads millions of versions)."""
    measure = sql.SQL("""
with nights as (
    select resource, evaluation_date, sum(fetched) as fetched, sum(quarantined) as quarantined
    from audit.load_runs where evaluation_date <= %(evaluation_date)s
    group by resource, evaluation_date
), history as (
    select resource, count(*) as history_nights,
           percentile_cont(0.5) within group (order by fetched)::numeric as median_fetched
    from (select resource, fetched, row_number() over (partition by resource order by evaluation_date desc) as n
          from nights where evaluation_date < %(evaluation_date)s) earlier
    where n <= %(history_nights)s
    group by resource
), tonight as (
    select resource, fetched, quarantined from nights where evaluation_date = %(evaluation_date)s
), raw_checks as ({raw_checks}
)
select resource as subject, fetched, quarantined, history_nights, median_fetched,
       case when history_nights >= %(min_history_nights)s and median_fetched >= %(min_median)s
            then coalesce(fetched, 0) / median_fetched end as volume_ratio,
       case when fetched >= %(min_fetched)s then quarantined::numeric / fetched end as quarantine_rate,
       versions, duplicate_versions, invalid_uscc, invalid_amounts, implausible_amounts, future_dates, early_dates,
       behind_publication
from (values {resources}) as registry (resource)
left join tonight using (resource) left join history using (resource) left join raw_checks using (resource)
""")
    parts = tuple(measure.format(raw_checks=_raw_checks(res, t), resources=sql.SQL("({})").format(sql.Literal(res.name)))
                  for res in R.RESOURCES)
    expectations = (
        gxe.ExpectColumnValuesToNotBeNull(column="fetched", **_described(
            "load_run_recorded", "fetched", "not null", CRITICAL, "every resource of the registry has a load run for D")),
        _within("volume_collapsed", "volume_ratio", CRITICAL, "records fetched for D / median of the recent "
                "nights: a near-empty night means the feed broke", low=t["volume_critical_ratio"]),
        _within("volume_dropped", "volume_ratio", WARNING, "records fetched for D / median of the recent nights",
                low=t["volume_warning_ratio"]),
        _within("quarantine_rate_excessive", "quarantine_rate", CRITICAL, "share of D's records refused",
                high=t["quarantine_critical_rate"]),
        _within("quarantine_rate_elevated", "quarantine_rate", WARNING, "share of D's records refused",
                high=t["quarantine_warning_rate"]),
        _none("versions_unique", "duplicate_versions", CRITICAL, "raw versions of D with the same key and updated_at"),
        _none("uscc_check_character", "invalid_uscc", CRITICAL, "distinct credit codes naming an enterprise in D's "
              "raw versions with a wrong format or check character"),
        _none("amounts_not_negative", "invalid_amounts", CRITICAL, "raw money amounts and counts of D that are "
              "not non-negative numbers (a profit: not a number)"),
        _none("amounts_plausible", "implausible_amounts", WARNING, "raw money amounts of D with more integer "
              "digits than thresholds' max_amount_digits (a unit or digit error)"),
        _none("event_dates_not_future", "future_dates", WARNING, "raw dates of D after D (periods' ends excepted)"),
        _none("dates_not_too_early", "early_dates", WARNING, "raw dates of D before thresholds' earliest_date"),
        _none("nothing_missed_by_the_publication", "behind_publication", WARNING, "versions archived for D after "
              "the latest publication, yet older than its cutoff: that publication graded without them"),
    )
    # A money amount with more integer digits than max_amount_digits (a regular expression: no cast per row).
    implausible = rf"^-?[0-9]{{{t['max_amount_digits'] + 1},}}"
    return Suite("feed", parts, FEED_METRICS, expectations, {**t, "implausible_amount": implausible})


# ------------------------------------------------------------------ staging (after dbt)
STAGING_METRICS = {"staged_rows": "bigint", "enum_violations": "bigint", "unknown_enterprise_refs": "bigint",
                   "invalid_amounts": "bigint"}


def _staging_checks(res: R.Resource, schema: sql.Identifier) -> sql.Composable:
    enums, refs, amounts = [], [], []
    for f in res.fields:
        col = sql.Identifier(f.name)
        if f.values:
            bad = sql.SQL("{} not in ({})").format(col, _literals(f.values))
            enums.append(sql.SQL("({} is null or {})").format(col, bad) if f.required else bad)
        if f.kind in (R.MONEY, R.COUNT):  # counts are whole by their staging type (integer): a fraction fails the cast
            amounts.append(sql.SQL("{} < 0").format(col))
    for f, when in _enterprise_refs(res):
        # NOT IN (not NOT EXISTS): inside a FILTER it becomes one hashed subplan, not a scan per row.
        refs.append(sql.SQL("({when} and {col} not in (select uscc from known_enterprises))"
                            ).format(when=when, col=sql.Identifier(f.name)))
    return sql.SQL(
        "select {name} as subject, count(*) as staged_rows, count(*) filter (where {enums}) as enum_violations,"
        " {refs} as unknown_enterprise_refs, count(*) filter (where {amounts}) as invalid_amounts"
        " from {schema}.{view} s"
    ).format(name=sql.Literal(res.name), schema=schema, view=sql.Identifier(f"stg_{res.name}"), enums=_any(enums),
             refs=sql.SQL("count(*) filter (where {})").format(_any(refs)) if refs else sql.SQL("null::bigint"),
             amounts=_any(amounts))


def staging(t: dict, suffix: str = "") -> Suite:
    """The staging views dbt built for D: enum domains, references to known enterprises, amounts."""
    schema = sql.Identifier("staging" + suffix)
    measure = sql.SQL("with known_enterprises as materialized (select uscc from {}.stg_enterprises) {}").format(
        schema, sql.SQL(" union all ").join(_staging_checks(res, schema) for res in R.RESOURCES))
    expectations = (
        _none("enum_domains", "enum_violations", CRITICAL, "staged values outside their enum domain (registry)"),
        _none("known_enterprises", "unknown_enterprise_refs", WARNING, "staged records naming an enterprise the "
              "warehouse does not know"),
        _none("financial_sanity", "invalid_amounts", CRITICAL, "staged money amounts or counts (employees, "
              "insured, deaths; integers in staging) below 0"),
    )
    return Suite("staging", (measure,), STAGING_METRICS, expectations, t)


# ------------------------------------------------------------------ marts (after dbt)
MARTS_METRICS = {
    "results": "bigint", "population": "bigint", "duplicate_results": "bigint", "missing_results": "bigint",
    "unexpected_results": "bigint", "points_out_of_range": "bigint", "incomplete_indicators": "bigint",
    "level1_mismatches": "bigint", "total_mismatches": "bigint", "computed_grade_mismatches": "bigint",
    "grade_mismatches": "bigint", "wrong_model_version": "bigint", "compared": "bigint", "grade_moved_share": "float8",
}

_CURRENT_PUBLICATION = sql.SQL(
    "select e.uscc, e.grade, e.model_version from publication.enterprise_evaluation e"
    " join audit.publications p using (publication_id) where p.is_current")
_NO_PUBLICATION = sql.SQL("select null::text as uscc, null::text as grade, null::text as model_version where false")


def marts(t: dict, *, published: bool, suffix: str = "") -> Suite:
    """The evaluation of D in the marts: one result per population member, points and sums
    consistent, grades consistent with the total and the caps, the model version in force, and
    no mass movement of grades against the current publication (``published``: it exists)."""
    measure = sql.SQL("""
with ev as materialized (
    select * from {marts}.fct_enterprise_evaluation where evaluation_date = %(evaluation_date)s
), indicator_sums as materialized (
    select uscc, count(*) as indicators,
           count(*) filter (where points < 0 or points > max_points) as out_of_range,
           sum(points) filter (where level1 = 'basic') as basic,
           sum(points) filter (where level1 = 'operations') as operations,
           sum(points) filter (where level1 = 'social') as social
    from {marts}.fct_indicator_score where evaluation_date = %(evaluation_date)s group by uscc
), in_force as (
    select model_version from {staging}.scoring_model_versions
    where effective_from <= %(evaluation_date)s order by effective_from desc limit 1
), grades as (
    select grade, min_total, grade_rank from {staging}.scoring_grades where model_version = (select model_version from in_force)
), caps as (
    select c.cap_code, g.grade_rank from {staging}.scoring_caps c join grades g using (grade)
    where c.model_version = (select model_version from in_force)
), population as materialized (
    select uscc from {staging}.stg_enterprises
    where reg_status = any(%(graded_reg_status)s) and established_on <= %(evaluation_date)s and audit.uscc_is_valid(uscc)
), expected as (
    select ev.uscc, computed.grade as computed_grade,
           (select grade from grades where grade_rank = greatest(computed.grade_rank, caps.grade_rank)) as grade,
           ev.cap_reason is null or caps.cap_code is not null as cap_known
    from ev
    left join lateral (select grade, grade_rank from grades where min_total <= ev.total_score
                       order by min_total desc limit 1) computed on true
    left join caps on caps.cap_code = ev.cap_reason
), published as ({published}), compared as (
    select count(*) as compared, count(*) filter (where p.grade <> ev.grade) as moved,
           bool_and(p.model_version = ev.model_version) as same_model
    from ev join published p using (uscc)
)
select 'marts' as subject,
    (select count(*) from ev) as results,
    (select count(*) from population) as population,
    (select count(*) - count(distinct uscc) from ev) as duplicate_results,
    (select count(*) from population p where not exists (select 1 from ev where ev.uscc = p.uscc)) as missing_results,
    (select count(*) from ev where not exists (select 1 from population p where p.uscc = ev.uscc)) as unexpected_results,
    (select coalesce(sum(out_of_range), 0) from indicator_sums) as points_out_of_range,
    (select count(*) from ev left join indicator_sums s using (uscc) where s.indicators is distinct from
        (select count(*) from {staging}.scoring_indicators where model_version = ev.model_version)) as incomplete_indicators,
    (select count(*) from ev join indicator_sums s using (uscc)
     where (s.basic, s.operations, s.social) is distinct from (ev.basic_score, ev.operations_score, ev.social_score)
    ) as level1_mismatches,
    (select count(*) from ev where total_score is distinct from basic_score + operations_score + social_score
    ) as total_mismatches,
    (select count(*) from ev join expected x using (uscc) where ev.computed_grade is distinct from x.computed_grade
    ) as computed_grade_mismatches,
    (select count(*) from ev join expected x using (uscc) where ev.grade is distinct from x.grade or not x.cap_known
    ) as grade_mismatches,
    (select count(*) from ev where model_version is distinct from (select model_version from in_force)
    ) as wrong_model_version,
    compared,
    case when same_model and compared >= %(min_compared)s then moved::numeric / compared end as grade_moved_share
from compared
""").format(published=_CURRENT_PUBLICATION if published else _NO_PUBLICATION,
           marts=sql.Identifier("marts" + suffix), staging=sql.Identifier("staging" + suffix))
    expectations = (
        _none("one_result_per_enterprise", "duplicate_results", CRITICAL, "enterprises graded more than once for D"),
        _none("population_graded", "missing_results", CRITICAL, "population members (reg_status, established_on "
              "<= D, valid uscc) without a result"),
        _none("only_population_graded", "unexpected_results", CRITICAL, "results for enterprises outside the population"),
        _none("points_within_max", "points_out_of_range", CRITICAL, "indicator points outside 0..max_points"),
        _none("indicators_complete", "incomplete_indicators", CRITICAL, "results without exactly one row per "
              "indicator of their model version"),
        _none("level1_sums", "level1_mismatches", CRITICAL, "results whose basic/operations/social score is not the "
              "sum of their indicator points"),
        _none("total_sums", "total_mismatches", CRITICAL, "results whose total is not the sum of the level-1 scores"),
        _none("computed_grade_from_total", "computed_grade_mismatches", CRITICAL, "computed grades that do not "
              "follow the grade thresholds of the total"),
        _none("grade_with_caps", "grade_mismatches", CRITICAL, "grades other than the worse of the computed grade "
              "and the cap named by cap_reason (or an unknown cap_reason)"),
        _none("model_version_in_force", "wrong_model_version", CRITICAL, "results of another model version than "
              "the one in force on D"),
        _within("grade_mass_movement", "grade_moved_share", CRITICAL, "share of enterprises whose grade moved since "
                "the current publication (same model version): held for review", high=t["grade_moved_critical_share"]),
        _within("grade_movement", "grade_moved_share", WARNING, "share of enterprises whose grade moved since the "
                "current publication (same model version)", high=t["grade_moved_warning_share"]),
    )
    return Suite("marts", (measure,), MARTS_METRICS, expectations, t)


def build(gate: str, thresholds: dict, *, published: bool = False, suffix: str = "") -> tuple[Suite, ...]:
    """The suites of ``gate``: ``feed`` before dbt, ``marts`` (staging and marts) after it; ``suffix``
    names a scratch build's schemas (``staging<suffix>``, ``marts<suffix>``: a re-evaluation's)."""
    if gate == "feed":
        return (feed(thresholds["feed"]),)
    if gate == "marts":
        return staging(thresholds["marts"], suffix), marts(thresholds["marts"], published=published, suffix=suffix)
    raise ValueError(f"unknown quality gate {gate!r}; known: feed, marts")
