"""Fuzz: 12,000 mutated versions of the acceptance dataset's records, served by the simulator and extracted
as a night. Mutations: wrong types, Unicode digits, huge numbers, bad dates, NUL characters, bytes that are
not UTF-8, lone surrogate escapes, unknown fields, duplicated JSON keys (and some versions left valid). The night completes, every
valid version is archived once, every other served version is in quarantine with a reason: nothing lost.

The mutations come from a seeded ``random.Random`` (12,000 versions in one dataset: more than a Hypothesis
example holds), so a failure is reproducible from ``SEED``. The oracle is the contract's validator
(``validation.refusal``) plus the two rules of the archive's encoding (UTF-8; no NaN or NUL).
"""
from __future__ import annotations

import datetime as dt
import json
import random
from collections import defaultdict

import pytest

from creditplus import config, warehouse
from creditplus.extract import Retry, extract_all
from creditplus.load import shown
from creditplus.platform.server import running
from creditplus.resources import RESOURCES
from creditplus.validation import parse_timestamp, refusal
from test_extract import ACCEPTANCE_DATASET, archived_versions

SEED, VERSIONS = 20261206, 12_000
DAY = dt.date(2026, 11, 26)
FIRST = dt.datetime(2026, 11, 20, tzinfo=config.CST)  # each version its own second from here: all before the cutoff
TO_FULL_WIDTH = str.maketrans("0123456789", "０１２３４５６７８９")
TO_ARABIC_INDIC = str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")


def _field(rng: random.Random, record: dict) -> str:
    return rng.choice(sorted(record))


def wrong_type(rng, record):
    record[_field(rng, record)] = rng.choice([123, "x", True, None, [], {}, 1.5, -7])


def unicode_digits(rng, record):
    texts = [k for k, v in record.items() if isinstance(v, str) and any(c.isdigit() for c in v)]
    if texts:
        name = rng.choice(texts)
        record[name] = record[name].translate(rng.choice([TO_FULL_WIDTH, TO_ARABIC_INDIC]))


def huge_number(rng, record):
    record[_field(rng, record)] = rng.choice([1, -1]) * 10 ** rng.randint(9, 40) + rng.randint(0, 9)


def bad_date(rng, record):
    dated = [k for k, v in record.items() if isinstance(v, str) and parse_timestamp(v + "T00:00:00+08:00") or
             k.endswith(("_on", "_until", "_at", "_to", "_from", "month"))]
    if dated:
        record[rng.choice(dated)] = rng.choice(["2026-02-30", "2026-13-01", "20261126", "2026-11-26T25:00:00+08:00",
                                                "26/11/2026", "2026-11", "", "2026-11-26T09:00:00"])


def nul(rng, record):
    texts = [k for k, v in record.items() if isinstance(v, str)]
    if texts:
        name = rng.choice(texts)
        record[name] = record[name][:1] + "\x00" + record[name][1:]


def unknown_field(rng, record):
    record[f"x_{rng.randint(0, 99)}"] = rng.choice(["extra", 1, None, {"nested": [1, 2]}])


RECORD_MUTATIONS = [wrong_type, unicode_digits, huge_number, bad_date, nul, unknown_field]


def mutated_line(rng: random.Random, record: dict) -> bytes:
    """One version: a record mutation, a line mutation (bytes not UTF-8, a key given twice), or none."""
    kind = rng.randrange(len(RECORD_MUTATIONS) + 3)
    if kind < len(RECORD_MUTATIONS):
        RECORD_MUTATIONS[kind](rng, record)
    line = json.dumps(record, ensure_ascii=False).encode()
    if kind == len(RECORD_MUTATIONS):  # a string's bytes that are not UTF-8 (or a lone surrogate's escape)
        quote = line.find(b'": "') + 4
        line = line[:quote] + rng.choice([b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80abc", b"\\ud800"]) + line[quote:]
    elif kind == len(RECORD_MUTATIONS) + 1:  # a key given twice: the last one counts (JSON parsers, jsonb)
        name = _field(rng, record)
        line = line[:-1] + b', "' + name.encode() + b'": ' + json.dumps(rng.choice(["dup", 0, None])).encode() + b"}"
    return line


def expected(resource, line: bytes, cutoff: dt.datetime) -> tuple[str, object]:
    """What the night must do with a line: ("skipped", None) when the platform cannot place it (not a JSON
    object with a parseable updated_at: the simulator skips it), ("refused", the record's text as quarantine
    keeps it: its JSON, bytes that were not UTF-8 as \\xNN), or ("valid", version)."""
    try:
        record = json.loads(line.decode("utf-8", "surrogateescape"))
    except ValueError:
        return "skipped", None
    instant = parse_timestamp(record.get("updated_at")) if isinstance(record, dict) else None
    if instant is None or instant >= cutoff:
        return "skipped", None
    text = json.dumps(record, ensure_ascii=False)
    try:
        text.encode("utf-8")
        json.dumps(record, allow_nan=False)
    except (UnicodeEncodeError, ValueError):
        return "refused", shown(text)
    if refusal(resource.name, record) is not None or "\\u0000" in text:
        return "refused", shown(text)
    return "valid", (tuple(str(record[k]) for k in resource.key), instant)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory):
    rng = random.Random(SEED)
    bases = [(res, json.loads(line)) for res in RESOURCES
             for line in (ACCEPTANCE_DATASET / f"{res.name}.jsonl").read_text(encoding="utf-8").splitlines()
             if line.strip() and isinstance(json.loads(line), dict) and refusal(res.name, json.loads(line)) is None]
    out = tmp_path_factory.mktemp("fuzzed")
    lines = defaultdict(list)
    for n in range(VERSIONS):
        res, base = rng.choice(bases)
        record = {**base, "updated_at": (FIRST + dt.timedelta(seconds=n)).isoformat()}
        lines[res].append(mutated_line(rng, record))
    for res in RESOURCES:
        (out / f"{res.name}.jsonl").write_bytes(b"\n".join(lines[res]) + b"\n")
    return out, lines


def test_a_fuzzed_feed_completes_and_loses_nothing(fuzzed, warehouse_url):
    dataset, lines = fuzzed
    cutoff = config.cutoff(DAY)
    with running(dataset) as url:
        runs = extract_all(DAY, warehouse_url=warehouse_url, platform_url=url, token="test-token",
                           retry=Retry(attempts=3, backoff=0.01), page_size=500)
    with warehouse.connect(warehouse_url) as conn:
        archive = archived_versions(conn)
        quarantine = defaultdict(set)
        for resource, original in conn.execute("select resource, original from audit.quarantine"):
            quarantine[resource].add(original)
        reasons = conn.execute("select count(*) from audit.quarantine where coalesce(reason, '') = ''").fetchone()[0]
    outcomes = defaultdict(int)
    for res in RESOURCES:
        verdicts = [expected(res, line, cutoff) for line in lines[res]]
        valid = [version for verdict, version in verdicts if verdict == "valid"]
        refused = {text for verdict, text in verdicts if verdict == "refused"}
        for verdict, _ in verdicts:
            outcomes[verdict] += 1
        run = runs[res.name]
        assert run["status"] == "succeeded", res.name
        assert sorted(archive[res.name]) == sorted(valid), res.name  # every valid version, each once
        assert run["archived"] == len(valid), res.name
        assert quarantine[res.name] == refused, res.name  # every refused version kept (once per distinct text)
        assert run["fetched"] == run["archived"] + run["duplicates"] + run["quarantined"], res.name
    assert reasons == 0
    assert sum(outcomes.values()) == VERSIONS
    assert outcomes["valid"] > 1000 and outcomes["refused"] > 3000, dict(outcomes)  # both sides exercised
