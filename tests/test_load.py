"""creditplus.load against a real PostgreSQL: archive, duplicates, quarantine, reruns."""
from __future__ import annotations

import json

import pytest

from creditplus import warehouse
from creditplus.load import archive_dataset_dir, load_items, load_lines

USCC = "91231124756697696C"  # a valid code (acceptance case 38)
PENALTY = {"record_id": "P1", "uscc": USCC, "decided_on": "2026-11-20", "severity": "general",
           "publicity_until": "2027-11-20", "status": "active", "updated_at": "2026-11-21T09:00:00+08:00"}


def line(**changes) -> str:
    return json.dumps({**PENALTY, **changes}, ensure_ascii=False)


@pytest.fixture
def conn(warehouse_url):
    with warehouse.connect(warehouse_url) as conn:
        yield conn


def rows(conn, query: str) -> list[tuple]:
    return conn.execute(query).fetchall()


def test_duplicates_in_a_batch_and_a_rerun_add_nothing(conn):
    lines = [line(), line(), line(updated_at="2026-11-22T09:00:00+08:00"),
             line(updated_at="2026-11-21T01:00:00Z"),  # the same instant as the first: a duplicate
             line(record_id="P2", severity="catastrophic"), "{not json", ""]
    first = load_lines(conn, "penalties", lines, "load-1")
    assert first == {"fetched": 6, "archived": 2, "duplicates": 2, "quarantined": 2}
    again = load_lines(conn, "penalties", lines, "load-2")
    assert again == {"fetched": 6, "archived": 0, "duplicates": 4, "quarantined": 2}
    conn.commit()
    assert rows(conn, "select record_id, updated_at::text, _load_id from raw.penalties order by updated_at") == [
        ("P1", "2026-11-21 01:00:00+00", "load-1"), ("P1", "2026-11-22 01:00:00+00", "load-1")]
    assert rows(conn, "select record_key, first_load_id from audit.quarantine order by record_key") == [
        ("P2", "load-1"), (None, "load-1")]


def test_quarantine_keeps_the_original_text_and_a_reason_naming_the_field(conn):
    bad = line(record_id="P3", severity="catastrophic")
    load_lines(conn, "penalties", [bad, "{not json"], "load-1")
    assert rows(conn, "select record_key, updated_at, original, reason from audit.quarantine order by record_key") == [
        ("P3", PENALTY["updated_at"], bad,
         "field severity must be one of minor, general, severe; got 'catastrophic'"),
        (None, None, "{not json",
         "line is not JSON (Expecting property name enclosed in double quotes: line 1 column 2 (char 1));"
         " each line must be one JSON object")]


def test_unknown_extra_fields_are_kept_and_keys_are_text(conn):
    record = {"uscc": USCC, "year": 2025, "revenue_wan": "10.00", "updated_at": "2026-01-01T00:00:00+08:00",
              "extra": {"nested": [1, 2]}, "note_cn": "中文"}
    assert load_items(conn, "financials", [record], "load-1")["archived"] == 1
    assert rows(conn, "select uscc, year, record from raw.financials") == [(USCC, "2025", record)]


def test_items_that_postgres_cannot_store_are_quarantined_not_fatal(conn):
    counts = load_items(conn, "penalties", [{**PENALTY, "extra": float("nan")}, {**PENALTY, "name": "a\x00b"},
                                            ["not", "an", "object"]], "load-1")
    assert counts == {"fetched": 3, "archived": 0, "duplicates": 0, "quarantined": 3}
    reasons = [r for (r,) in rows(conn, "select reason from audit.quarantine order by reason")]
    assert [r.split(",")[0] for r in reasons] == [
        "record holds NaN or Infinity", "record holds a NUL character (\\u0000)", "record must be a JSON object; got list"]


def test_archive_dataset_dir_reads_every_resource_file(conn, tmp_path):
    (tmp_path / "penalties.jsonl").write_text(f"{line()}\n{line()}\n\n{line(uscc='91231124756697696D')}\n")
    (tmp_path / "tax_ratings.jsonl").write_text(
        json.dumps({"uscc": USCC, "year": 2025, "rating": "A", "updated_at": "2026-01-01T00:00:00+08:00"}) + "\n")
    counts = archive_dataset_dir(conn, tmp_path, "dir-1")
    assert counts["penalties"] == {"fetched": 3, "archived": 1, "duplicates": 1, "quarantined": 1}
    assert counts["tax_ratings"] == {"fetched": 1, "archived": 1, "duplicates": 0, "quarantined": 0}
    assert counts["enterprises"] == {"fetched": 0, "archived": 0, "duplicates": 0, "quarantined": 0}
    assert "uscc" in rows(conn, "select reason from audit.quarantine")[0][0]
    assert archive_dataset_dir(conn, tmp_path, "dir-2")["penalties"]["archived"] == 0


def test_a_page_is_read_by_postgres_skipping_its_refused_positions(conn):
    items = [PENALTY, {**PENALTY, "record_id": "P2", "severity": "catastrophic"}, {**PENALTY, "record_id": "P3"},
             PENALTY]
    page = json.dumps({"resource": "penalties", "items": items, "next_page_token": None}, ensure_ascii=False)
    assert load_items(conn, "penalties", json.loads(page)["items"], "page-1", page=page.encode()) == {
        "fetched": 4, "archived": 2, "duplicates": 1, "quarantined": 1}
    assert rows(conn, "select record_id from raw.penalties order by 1") == [("P1",), ("P3",)]
    assert rows(conn, "select record_key from audit.quarantine") == [("P2",)]


@pytest.mark.parametrize("as_page", [False, True])
def test_what_postgres_cannot_parse_falls_back_to_python_encoding(conn, as_page):
    # An ISO form Python reads and PostgreSQL does not: refused by validation (staging casts every
    # timestamp field in PostgreSQL), not archived by Python's reading of it.
    odd_time = {**PENALTY, "record_id": "P4", "updated_at": "2026-11-21T09+08:00"}
    lines = [line(), json.dumps(odd_time), line(record_id="P5", extra=float("nan"))]
    if as_page:
        page = "{\"items\": [" + ", ".join(lines) + "]}"
        counts = load_items(conn, "penalties", json.loads(page)["items"], "load-1", page=page)
    else:
        counts = load_lines(conn, "penalties", lines, "load-1")
    assert counts == {"fetched": 3, "archived": 1, "duplicates": 0, "quarantined": 2}
    assert rows(conn, "select record_id, updated_at::text from raw.penalties order by 1") == [("P1", "2026-11-21 01:00:00+00")]
    reasons = dict(rows(conn, "select record_key, reason from audit.quarantine"))
    assert reasons["P5"].startswith("record holds NaN") and reasons["P4"].startswith("field updated_at must be an ISO-8601")
