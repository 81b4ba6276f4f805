"""The one path by which records reach the raw archive.

Every record version is checked with ``validation.refusal`` (``classify_*``, Python
only). ``write_batch`` then ``COPY``-s the valid ones into a temporary table and inserts
them into ``raw.<resource>`` with ``on conflict do nothing`` (unique on key +
``updated_at``), the original record kept as JSONB with any unknown extra fields. Refused
ones (a line that is not JSON too) go to ``audit.quarantine`` with the reason,
deduplicated on their text, so loading the same records again adds nothing.

Fast path: the JSON texts as received (the lines, or a whole API page) are ``COPY``-ed
and PostgreSQL takes the records, keys and ``updated_at`` from them, inside a savepoint.
Should PostgreSQL refuse them (NaN, ``\\u0000``; validation admits only timestamps PostgreSQL reads),
the careful path encodes each record in Python and normalises its ``updated_at``;
records PostgreSQL cannot store at all are quarantined with the reason.

Counts returned (``COUNT_KEYS``), with ``fetched = archived + duplicates + quarantined``:
``fetched`` records offered, ``archived`` new rows in the archive, ``duplicates`` valid
versions already archived (or repeated in the batch), ``quarantined`` refused ones
(whether or not an earlier load already quarantined the same text).

Nothing here commits: callers own the transaction (the extractor commits the data
together with its watermark).

>>> with warehouse.connect(url) as conn:                     # doctest: +SKIP
...     load_lines(conn, "penalties", ['{"record_id": "P1", ...}', "not json"], "manual-1")
{'fetched': 2, 'archived': 1, 'duplicates': 0, 'quarantined': 1}
>>> body = b'{"resource": "penalties", "items": [{...}, {...}], "next_page_token": null}'
>>> with warehouse.connect(url) as conn:                     # doctest: +SKIP
...     load_items(conn, "penalties", json.loads(body)["items"], "manual-2", page=body)
{'fetched': 2, 'archived': 2, 'duplicates': 0, 'quarantined': 0}
>>> with warehouse.connect(url) as conn:                     # doctest: +SKIP
...     archive_dataset_dir(conn, Path("cases/basic-2026-11-26/dataset"), "acceptance")
{'enterprises': {'fetched': 216, 'archived': 209, 'duplicates': 1, 'quarantined': 6}, 'financials': {...}, ...}
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from creditplus import validation
from creditplus.resources import RESOURCES, Resource, resource as registry_entry

COUNT_KEYS = ("fetched", "archived", "duplicates", "quarantined")


def empty_counts() -> dict[str, int]:
    return dict.fromkeys(COUNT_KEYS, 0)


def add_counts(total: dict[str, int], part: dict[str, int]) -> dict[str, int]:
    """Add ``part`` into ``total`` in place; return ``total``."""
    for key in COUNT_KEYS:
        total[key] += part[key]
    return total


def encode_record(record: object) -> tuple[str, str | None]:
    """(JSON text, problem): the text, and why PostgreSQL's ``jsonb`` cannot store it, if it cannot."""
    try:
        text = json.dumps(record, ensure_ascii=False, allow_nan=False)
    except ValueError:
        return json.dumps(record, ensure_ascii=False), (
            "record holds NaN or Infinity, which is not JSON; send numbers as JSON numbers or decimal strings")
    if "\\u0000" in text:
        return text, "record holds a NUL character (\\u0000), which PostgreSQL cannot store; remove it from the text"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return text, ("record holds a lone UTF-16 surrogate (a \\ud800-\\udfff escape without its pair), which is "
                      "not Unicode text; send each character whole")
    return text, None


NOT_UTF8 = ("record is not valid UTF-8 (its bytes are kept, each invalid one as \\xNN); the platform must "
            "send UTF-8")


def shown(text: str) -> str:
    """``text`` storable as PostgreSQL text: bytes that were not UTF-8 (decoded as lone surrogates with
    ``surrogateescape``) and NUL characters (a key or ``updated_at`` may hold one) as ``\\xNN``; any other
    text unchanged."""
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that came as a JSON escape (\\ud800): shown as one
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text.replace("\x00", "\\x00")


def _refused(res: Resource, record: object, original: str, reason: str) -> tuple[str | None, str | None, str, str]:
    """A quarantine row: (key values joined with ``|`` if any is present, updated_at, original, reason)."""
    key = None
    if isinstance(record, dict) and any(record.get(k) is not None for k in res.key):
        key = shown("|".join("" if record.get(k) is None else str(record[k]) for k in res.key))
    updated_at = record.get("updated_at") if isinstance(record, dict) else None
    return key, None if updated_at is None else shown(str(updated_at)), shown(original), reason


def _insert(res: Resource, source: sql.Composable) -> sql.Composed:
    """Insert the ``updated_at`` and ``record`` columns of ``source`` into ``raw.<resource>``,
    the key columns taken from the record."""
    return sql.SQL(
        "insert into raw.{table} ({keys}, updated_at, record, _load_id)"
        " select {values}, updated_at, record, %(load_id)s from ({source}) as s on conflict do nothing"
    ).format(table=sql.Identifier(res.name), keys=sql.SQL(", ").join(map(sql.Identifier, res.key)),
             values=sql.SQL(", ").join(sql.SQL("record ->> {}").format(sql.Literal(k)) for k in res.key),
             source=source)


# Fast-path sources over the COPY-ed JSON texts: one record per row, or one page per row.
_FROM_LINES = sql.SQL("select (doc ->> 'updated_at')::timestamptz as updated_at, doc as record from _docs")
_FROM_PAGE = sql.SQL(
    "select (item ->> 'updated_at')::timestamptz as updated_at, item as record"
    " from _docs, jsonb_array_elements(doc -> 'items') with ordinality as i(item, n) where n <> all(%(refused)s)")


def _copy_texts(cur: psycopg.Cursor, texts: Iterable[str]) -> None:
    """``COPY`` JSON texts as they came into the session's ``_docs`` (parsed by PostgreSQL)."""
    cur.execute("create temp table if not exists _docs (doc jsonb)")
    cur.execute("truncate _docs")
    with cur.copy("copy _docs (doc) from stdin") as copy:
        for text in texts:
            copy.write_row((text,))


def _archive_records(cur: psycopg.Cursor, res: Resource, records: list[dict], load_id: str) -> tuple[int, list[tuple]]:
    """Careful path: encode each record in Python with its updated_at normalised; records
    PostgreSQL cannot store (NaN, NUL) come back as quarantine rows. Returns (archived, refused)."""
    rows, refused = [], []
    for record in records:
        text, problem = encode_record(record)
        if problem:
            refused.append(_refused(res, record, text, problem))
        else:
            rows.append((validation.parse_timestamp(record["updated_at"]).isoformat(), text))
    cur.execute("create temp table if not exists _records (updated_at timestamptz, record jsonb)")
    cur.execute("truncate _records")
    with cur.copy("copy _records (updated_at, record) from stdin") as copy:
        for row in rows:
            copy.write_row(row)
    cur.execute(_insert(res, sql.SQL("select updated_at, record from _records")), {"load_id": load_id})
    return cur.rowcount, refused


@dataclass
class Batch:
    """Records of one resource sorted by validation (Python work only), ready for ``write_batch``.

    ``texts``: the JSON the valid records came in, which PostgreSQL parses itself: their
    lines, or the one page holding them with ``page_refused`` the positions to skip."""

    res: Resource
    valid: list[dict] = field(default_factory=list)
    refused: list[tuple] = field(default_factory=list)  # quarantine rows, see _refused
    texts: list[str] | None = None
    page_refused: list[int] | None = None


def _utf8(page: str | bytes | None) -> bool:
    if isinstance(page, bytes):
        try:
            page.decode("utf-8")
        except UnicodeDecodeError:
            return False
    return True


def _not_utf8(item: object) -> bool:
    """The item holds bytes that were not UTF-8 (lone surrogates from a ``surrogateescape`` decoding)."""
    try:
        json.dumps(item, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except ValueError:  # NaN: refused on its own grounds
        pass
    return False


def classify_items(resource: str, items: Iterable[object], page: str | bytes | None = None) -> Batch:
    """Validate decoded records of ``resource``. ``page``: the JSON text they were decoded
    from (an API response body, the records under ``"items"``), for PostgreSQL to read; a page that is
    not valid UTF-8 was decoded with ``surrogateescape``, and its records holding such bytes are refused."""
    batch, positions = Batch(registry_entry(resource)), []
    utf8 = _utf8(page)
    for position, item in enumerate(items, 1):
        reason = NOT_UTF8 if not utf8 and _not_utf8(item) else validation.refusal(resource, item)
        if reason is None:
            batch.valid.append(item)
        else:
            batch.refused.append(_refused(batch.res, item, encode_record(item)[0], reason))
            positions.append(position)
    if page is not None:
        batch.texts = [page.decode("utf-8", "replace") if isinstance(page, bytes) else page]
        batch.page_refused = positions
    return batch


def classify_lines(resource: str, lines: Iterable[str | bytes]) -> Batch:
    """Validate raw JSON lines of ``resource`` (blank lines skipped; a line that is not JSON is refused)."""
    batch = Batch(registry_entry(resource), texts=[])
    for line in lines:
        text = (line.decode("utf-8", "replace") if isinstance(line, bytes) else line).rstrip("\r\n")
        if not text.strip():
            continue
        try:
            record = json.loads(text)
        except ValueError as exc:
            batch.refused.append((None, None, text, f"line is not JSON ({exc}); each line must be one JSON object"))
            continue
        reason = validation.refusal(resource, record)
        if reason is None:
            batch.valid.append(record)
            batch.texts.append(text)
        else:
            batch.refused.append(_refused(batch.res, record, text, reason))
    return batch


def write_batch(conn: psycopg.Connection, batch: Batch, load_id: str) -> dict[str, int]:
    """Archive the batch's valid records and quarantine its refused ones; return the counts.

    The fast path (PostgreSQL parses ``batch.texts``) runs inside a savepoint; if
    PostgreSQL cannot read them, the careful path encodes each record in Python instead."""
    res, valid, refused = batch.res, batch.valid, batch.refused
    fetched, archived = len(valid) + len(refused), 0
    with conn.cursor() as cur:
        if valid and batch.texts is not None:
            cur.execute("savepoint load_fast")
            try:
                _copy_texts(cur, batch.texts)
                page = batch.page_refused is not None
                cur.execute(_insert(res, _FROM_PAGE if page else _FROM_LINES),
                            {"load_id": load_id, "refused": batch.page_refused})
                archived, valid = cur.rowcount, []
                cur.execute("release savepoint load_fast")
            except psycopg.errors.DataError:  # NaN or \u0000
                cur.execute("rollback to savepoint load_fast")
        if valid:
            archived, unstorable = _archive_records(cur, res, valid, load_id)
            refused = refused + unstorable
        if refused:
            cur.execute(
                "insert into audit.quarantine (resource, record_key, updated_at, original, reason, first_load_id)"
                " select %s, k, u, o, r, %s from unnest(%s::text[], %s::text[], %s::text[], %s::text[]) as t(k, u, o, r)"
                " on conflict (resource, md5(original)) do nothing",
                (res.name, load_id, *map(list, zip(*refused))))
    return {"fetched": fetched, "archived": archived, "duplicates": fetched - len(refused) - archived,
            "quarantined": len(refused)}


def load_items(conn: psycopg.Connection, resource: str, items: Iterable[object], load_id: str,
               page: str | bytes | None = None) -> dict[str, int]:
    """Archive decoded records of ``resource`` (see ``classify_items``); return the counts."""
    return write_batch(conn, classify_items(resource, items, page), load_id)


def load_lines(conn: psycopg.Connection, resource: str, lines: Iterable[str | bytes], load_id: str) -> dict[str, int]:
    """Archive raw JSON lines of ``resource`` (see ``classify_lines``); return the counts."""
    return write_batch(conn, classify_lines(resource, lines), load_id)


def archive_dataset_dir(conn: psycopg.Connection, dataset_dir: Path | str, load_id: str) -> dict[str, dict[str, int]]:
    """Archive a dataset directory (one ``<resource>.jsonl`` per resource; a missing file
    is an empty resource) in one transaction; return the counts per resource."""
    dataset_dir = Path(dataset_dir)
    if not dataset_dir.is_dir():
        raise FileNotFoundError(f"{dataset_dir} is not a dataset directory; give one with <resource>.jsonl files")
    counts: dict[str, dict[str, int]] = {}
    with conn.transaction():
        for res in RESOURCES:
            path = dataset_dir / f"{res.name}.jsonl"
            if not path.exists():
                counts[res.name] = empty_counts()
                continue
            with path.open(encoding="utf-8", errors="replace") as lines:
                counts[res.name] = load_lines(conn, res.name, lines, load_id)
    return counts
