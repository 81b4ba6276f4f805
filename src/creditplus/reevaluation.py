"""Re-evaluation of some enterprises between nights (第十四条–第十六条): ``credit_reevaluation``.

An upheld objection, an approved credit repair or a confirmed self-report that reaches the warehouse
after the night's publication is taken in without waiting for the next night: dbt rebuilds what
publication reads for the current publication's evaluation date D (same knowledge cutoff, so what
arrived late for D counts, a decision dated after D waits for the night of its date) aside, in the
schemas ``staging_reevaluation``, ``intermediate_reevaluation`` and ``marts_reevaluation``, so a
nightly build running at the same time never reads or loses a table of it; they pass the same
quality gate, and ``publish.republish`` makes a new current publication with just the named
enterprises' rows replaced, writing notices and warnings in the same transaction. A code that is malformed or names no
enterprise the warehouse received fails the trigger before anything is touched.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping

from creditplus import dbt_runner, publish, warehouse
from creditplus.errors import UserError
from creditplus.validation import is_valid_uscc

# What publication reads (dbt_runner.build leaves the dbt unit tests out: they check logic, not data).
SELECT = ("+fct_enterprise_evaluation +fct_indicator_score +fct_indicator_explanation +path:models/supply_chain"
          " +path:models/notices +path:models/rights")
SCHEMA_SUFFIX = "_reevaluation"  # the re-evaluation's own schemas: staging_reevaluation, ...
# Updated (with extra {"usccs": [...]}) by whatever loads rights decisions; schedules credit_reevaluation.
RIGHTS_DECISIONS_ASSET = "creditplus://warehouse/rights_decisions"


class ReevaluationError(UserError):
    """The trigger names a malformed or unknown credit code, or nothing is published yet; nothing changed."""


def requested_usccs(params: dict | None, triggering_asset_events: Mapping | None = None) -> list[str]:
    """The codes of a run: the ``usccs`` param (a list or a comma/space separated string) and the
    ``usccs`` of every triggering asset event's extra."""
    events = [e for group in (triggering_asset_events or {}).values() for e in group]
    raw: list[str] = []
    for value in [(params or {}).get("usccs")] + [(event.extra or {}).get("usccs") for event in events]:
        if isinstance(value, str):
            value = value.replace(",", " ").split()
        raw += [str(v).strip() for v in value or ()]
    return sorted(set(raw))


def validate(usccs: Iterable[str], *, warehouse_url: str | None = None) -> tuple[dt.date, list[str]]:
    """The current publication's evaluation date and the checked codes; raises ``ReevaluationError``
    naming every malformed or unknown code."""
    usccs = sorted(set(usccs))
    if not usccs:
        raise ReevaluationError("no credit code given: trigger with params {\"usccs\": [\"<18-character uscc>\", ...]}")
    malformed = [u for u in usccs if not is_valid_uscc(u)]
    if malformed:
        raise ReevaluationError(f"malformed credit code(s) {', '.join(map(repr, malformed))}: a uscc is 18 characters "
                                "of 0-9A-HJ-NPQRTUWXY with the right check character; nothing re-evaluated")
    with warehouse.connect(warehouse_url) as conn:
        known = {u for (u,) in conn.execute("select distinct uscc from raw.enterprises where uscc = any(%s)", (usccs,))}
        current = conn.execute("select evaluation_date from audit.publications where is_current").fetchone()
    unknown = [u for u in usccs if u not in known]
    if unknown:
        raise ReevaluationError(f"unknown credit code(s) {', '.join(unknown)}: the platform never sent these "
                                "enterprises; nothing re-evaluated")
    if current is None:
        raise ReevaluationError("nothing is published yet: the nightly evaluation must publish first")
    return current[0], usccs


def build_marts(evaluation_date: dt.date, *, warehouse_url: str | None = None,
                schema_suffix: str = SCHEMA_SUFFIX) -> None:
    """``dbt build`` of what publication reads for D, with its data tests (without the unit tests), into
    the schemas ``staging<schema_suffix>``, ``intermediate<...>``, ``marts<...>``: the re-evaluation's by
    default, the nightly's with ``schema_suffix=""``."""
    dbt_runner.build(evaluation_date, warehouse_url=warehouse_url, select=SELECT,
                     vars={"schema_suffix": schema_suffix} if schema_suffix else None)


def reevaluate(usccs: Iterable[str], *, warehouse_url: str | None = None, run_id: str) -> int:
    """Validate, re-score, gate and republish the enterprises ``usccs``; the new publication's id."""
    from creditplus import quality

    evaluation_date, usccs = validate(usccs, warehouse_url=warehouse_url)
    build_marts(evaluation_date, warehouse_url=warehouse_url)
    quality.check_marts(evaluation_date, warehouse_url=warehouse_url, run_id=run_id, schema_suffix=SCHEMA_SUFFIX)
    return publish.republish(usccs, warehouse_url=warehouse_url, run_id=run_id, schema_suffix=SCHEMA_SUFFIX)
