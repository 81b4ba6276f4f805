"""Validation of one record version against the source contract.

``refusal(resource, record)`` returns ``None`` for a valid record, otherwise a reason
that names the field, what was wrong and what a valid value looks like.
"""
from __future__ import annotations

import datetime as dt
import functools
import re

from stdnum.cn import uscc as stdnum_uscc

from creditplus import resources as R

_USCC_ALPHABET = frozenset("0123456789ABCDEFGHJKLMNPQRTUWXY")
# Every digit an ASCII 0-9 (spec: "Valid and refused records"; Python's \d would take full-width and
# other Unicode digits, which PostgreSQL's casts refuse).
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"[0-9]{4}-(0[1-9]|1[0-2])")
# PostgreSQL's numeric holds up to 131072 digits before the point and 16383 after.
_DECIMAL = re.compile(r"-?[0-9]{1,131072}(\.[0-9]{1,16383})?")
# ISO-8601 date and time with an offset, in the forms PostgreSQL reads too (Python's fromisoformat also
# takes any separator character and packed times, which PostgreSQL refuses).
_TIMESTAMP = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]{1,6})?)?"
                        r"(Z|[+-][0-9]{2}(:?[0-9]{2})?)")
INT_RANGE = (-2**31, 2**31 - 1)  # a JSON integer must fit PostgreSQL's integer


def is_valid_uscc(value: object) -> bool:
    """18 characters of the GB 32100 alphabet with the right mod-31 check character."""
    return isinstance(value, str) and _valid_uscc_text(value)


@functools.lru_cache(maxsize=1 << 18)  # an enterprise's code recurs in every one of its records
def _valid_uscc_text(value: str) -> bool:
    return (
        len(value) == 18
        and set(value) <= _USCC_ALPHABET
        and stdnum_uscc.calc_check_digit(value[:17]) == value[17]
    )


def parse_date(value: object) -> dt.date | None:
    if isinstance(value, str) and _DATE.fullmatch(value):
        try:
            return dt.date.fromisoformat(value)
        except ValueError:
            return None
    return None


def parse_timestamp(value: object) -> dt.datetime | None:
    """An ISO-8601 timestamp with an offset, else ``None``."""
    if not isinstance(value, str) or not _TIMESTAMP.fullmatch(value):
        return None
    try:
        ts = dt.datetime.fromisoformat(value)
    except ValueError:
        return None
    return ts if ts.tzinfo is not None else None


def _kind_problem(kind: str, value: object) -> str | None:
    """What is wrong with a present, non-null value of ``kind``; ``None`` if fine."""
    if kind == R.TEXT:
        return None if isinstance(value, str) else "must be a string"
    if kind in (R.INT, R.COUNT):
        if not isinstance(value, int) or isinstance(value, bool):
            return "must be a JSON integer"
        if not INT_RANGE[0] <= value <= INT_RANGE[1]:
            return f"must lie in {INT_RANGE[0]}..{INT_RANGE[1]}"
        return "must be >= 0" if kind == R.COUNT and value < 0 else None
    if kind == R.BOOL:
        return None if isinstance(value, bool) else "must be a JSON boolean (true/false)"
    if kind == R.DATE:
        return None if parse_date(value) else "must be an existing date YYYY-MM-DD"
    if kind == R.MONTH:
        return None if isinstance(value, str) and _MONTH.fullmatch(value) else "must be a month YYYY-MM"
    if kind == R.TIMESTAMP:
        return None if parse_timestamp(value) else "must be an ISO-8601 timestamp with an offset, e.g. 2026-11-26T09:00:00+08:00"
    if kind in (R.MONEY, R.SIGNED_MONEY):
        if not isinstance(value, str) or not _DECIMAL.fullmatch(value):
            return 'must be a decimal string of ASCII digits like "1234.50"'
        return "must be >= 0" if kind == R.MONEY and value.startswith("-") and value.strip("-0.") else None
    if kind in (R.USCC, R.SUBJECT_ID):
        return None if is_valid_uscc(value) else "must be an 18-character uscc with the right check character"
    if kind == R.OBJECT:
        return None if isinstance(value, dict) else "must be a JSON object"
    raise ValueError(f"unknown field kind {kind!r}")


def _fields_problem(fields: tuple[R.Field, ...], record: dict, prefix: str = "") -> str | None:
    for f in fields:
        value = record.get(f.name)
        name = prefix + f.name
        if value is None or value == "":
            if f.required:
                return f"field {name} is required and was {'empty' if value == '' else 'missing or null'}"
            continue
        # A person's subject_id is a resident ID: its format is not checked at load.
        kind = f.kind
        if kind == R.SUBJECT_ID and record.get("subject_type") != "enterprise":
            kind = R.TEXT
        problem = _kind_problem(kind, value)
        if problem:
            return f"field {name} {problem}; got {value!r}"
        if f.values and value not in f.values:
            return f"field {name} must be one of {', '.join(f.values)}; got {value!r}"
    return None


def refusal(resource: str, record: object) -> str | None:
    """Why ``record`` (one decoded JSON value) is refused, or ``None`` when valid."""
    if not isinstance(record, dict):
        return f"record must be a JSON object; got {type(record).__name__}"
    if record.get("updated_at") in (None, ""):
        return "field updated_at is required and was missing or null"
    if not parse_timestamp(record["updated_at"]):
        return f"field updated_at {_kind_problem(R.TIMESTAMP, record['updated_at'])}; got {record['updated_at']!r}"
    problem = _fields_problem(R.resource(resource).fields, record)
    if problem is None and resource == "self_reports":
        problem = _fields_problem(R.SELF_REPORT_PAYLOADS[record["kind"]], record["payload"], "payload.")
    return problem
