"""Property: every record version that validation accepts, staging can type (spec: "Valid and refused
records"). Hypothesis draws records of every resource whose fields mix valid values with hostile ones
(Unicode digits, integers beyond PostgreSQL's integer, overlong decimals, odd timestamps); each record
accepted (by validation, and by the archive's encoding) is typed in PostgreSQL the way staging types it (macro ``typed`` in ``stg_latest.sql``: the
field's text from the archived jsonb, cast to ``dbt_runner.SQL_TYPES`` of its kind), and must not fail.
"""
from __future__ import annotations

import datetime as dt

import jinja2
import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from creditplus import config, resources as R, warehouse
from creditplus.dbt_runner import SQL_TYPES
from creditplus.load import encode_record
from creditplus.validation import refusal

USCC = "91231124756697696C"
# staging's macros, rendered by Jinja as dbt renders them (``typed`` calls nothing of dbt's)
TYPED = jinja2.Environment(extensions=["jinja2.ext.do"]).from_string(
    (config.DBT_PROJECT_DIR / "macros" / "stg_latest.sql").read_text()).module
UNICODE_DIGITS = "０１２３４５６７８９٠١٢٣٤٥٦٧٨٩०१२३४५६७८९"
digits = st.text(alphabet="0123456789" + UNICODE_DIGITS, min_size=1, max_size=40)

HOSTILE = {
    R.INT: st.one_of(st.integers(-3000, 3000), st.integers(), st.integers(-2**64, 2**64), st.booleans(), st.floats()),
    R.MONEY: st.one_of(st.from_regex(r"-?[0-9]{1,12}(\.[0-9]{1,4})?", fullmatch=True),
                       st.builds(lambda a, b: f"{a}.{b}", digits, digits), digits,
                       st.integers(1, 200).map(lambda n: "9" * n)),
    R.DATE: st.one_of(st.dates().map(str), st.builds(lambda y, m, d: f"{y}-{m}-{d}", digits, digits, digits),
                      st.text(max_size=12)),
    R.MONTH: st.one_of(st.dates().map(lambda d: str(d)[:7]), st.builds(lambda y, m: f"{y}-{m}", digits, digits)),
    R.TIMESTAMP: st.one_of(
        st.datetimes(timezones=st.timezones()).map(lambda t: t.isoformat()),
        st.datetimes().map(lambda t: t.isoformat() + "Z"),
        st.builds(lambda d, t: f"{d}T{t}+08:00", st.dates().map(str), st.from_regex(r"[0-9٠-٩]{2}(:[0-9]{2}){0,2}(\.[0-9]{1,9})?", fullmatch=True)),
        st.text(max_size=30)),
    R.BOOL: st.one_of(st.booleans(), st.sampled_from(["true", 1, 0])),
    R.OBJECT: st.one_of(st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3), st.text(max_size=5)),
}
HOSTILE[R.COUNT] = HOSTILE[R.INT]
HOSTILE[R.SIGNED_MONEY] = HOSTILE[R.MONEY]


VALID = {
    R.INT: st.integers(-2**31, 2**31 - 1), R.COUNT: st.integers(0, 2**31 - 1), R.BOOL: st.booleans(),
    R.MONEY: st.from_regex(r"[0-9]{1,14}(\.[0-9]{1,4})?", fullmatch=True),
    R.SIGNED_MONEY: st.from_regex(r"-?[0-9]{1,14}(\.[0-9]{1,4})?", fullmatch=True),
    R.DATE: st.dates().map(str), R.MONTH: st.dates().map(lambda d: str(d)[:7]),
    R.TIMESTAMP: st.datetimes(timezones=st.sampled_from([dt.timezone(dt.timedelta(minutes=15 * n)) for n in range(-48, 57)])
                              ).map(lambda t: t.isoformat()),
    R.TEXT: st.text(min_size=1, max_size=20),
    R.OBJECT: st.dictionaries(st.text(max_size=5), st.text(max_size=5), max_size=3),
}


def field_values(field: R.Field):
    """Mostly valid values (so that many records pass), else hostile ones."""
    if field.values:
        valid, hostile = st.sampled_from(field.values), st.text(max_size=8)
    elif field.kind in (R.USCC, R.SUBJECT_ID):
        valid, hostile = st.just(USCC), st.text(max_size=18)
    else:
        valid, hostile = VALID[field.kind], HOSTILE.get(field.kind, st.text(max_size=20))
    return st.sampled_from([valid] * 4 + [st.just(""), hostile]).flatmap(lambda chosen: chosen)


@st.composite
def records(draw):
    resource = draw(st.sampled_from(R.RESOURCES))
    record = {"updated_at": draw(field_values(R.Field("updated_at", R.TIMESTAMP)))}
    for field in resource.fields:
        if field.required or draw(st.booleans()):
            record[field.name] = draw(field_values(field))
    if resource.name == "self_reports" and record.get("kind") in R.SELF_REPORT_PAYLOADS:
        record["payload"] = {f.name: draw(field_values(f)) for f in R.SELF_REPORT_PAYLOADS[record["kind"]]}
    return resource, record


def typed(text: str, kind: str) -> str:
    """Staging's cast of a field's text: macro ``typed`` rendered by dbt's own Jinja."""
    return TYPED.typed(text, SQL_TYPES[kind]).strip()


def staging_casts(resource: R.Resource, record: dict) -> list[str]:
    casts = [typed("r ->> 'updated_at'", R.TIMESTAMP)]
    casts += [typed(f"r ->> '{f.name}'", f.kind) for f in resource.fields if f.kind != R.OBJECT]
    if resource.name == "self_reports":
        casts += [typed(f"r -> 'payload' ->> '{f.name}'", f.kind) for f in R.SELF_REPORT_PAYLOADS[record["kind"]]]
    return casts


def test_every_record_validation_accepts_is_castable_by_staging(warehouse_url):
    accepted = []
    with warehouse.connect(warehouse_url, autocommit=True) as conn:
        @settings(max_examples=3000, deadline=None, derandomize=True, database=None,
                  suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
        @given(records())
        def check(drawn):
            resource, record = drawn
            text, unstorable = encode_record(record)  # the archive's own refusal (NaN, NUL), tested in test_load
            if refusal(resource.name, record) is not None or unstorable:
                return
            accepted.append(resource.name)
            query = f"select {', '.join(staging_casts(resource, record))} from (select %s::jsonb as r) t"
            try:
                conn.execute(query, (text,))
            except psycopg.Error as exc:
                raise AssertionError(f"validation accepted a {resource.name} record staging cannot type: "
                                     f"{record!r}: {exc}") from None

        check()
    assert len(accepted) >= 100 and len(set(accepted)) >= 10  # the property was exercised, not vacuous
