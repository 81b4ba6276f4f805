"""The credit platform simulator's HTTP server (spec: credit-platform-api.md, "Transport").

A dataset directory is loaded once: each ``<resource>.jsonl`` is kept as its original
bytes plus arrays of line offsets sorted by (``updated_at`` instant, key). A page is a
bisect on the window and a join of the original lines, never a re-serialisation.
"""
from __future__ import annotations

import asyncio
import base64
import bisect
import contextlib
import datetime as dt
import hashlib
import hmac
import json
import json.scanner
import os
import signal
import socket
import sys
import threading
import time
from array import array
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from creditplus import resources as R
from creditplus.errors import UserError
from creditplus.platform.faults import FAULT_KINDS, RETRY_AFTER_SECONDS, SLOW_SECONDS, Faults, parse_spec
from creditplus.validation import parse_timestamp

DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 1000, 5000
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
_TOKEN_KEY = b"creditplus-simulator-page-token"  # tokens only need to be tamper-evident


def instant_us(ts: dt.datetime) -> int:
    """Microseconds since the epoch: timestamps with any offset compare as instants."""
    return round(ts.timestamp() * 1_000_000)


_midnights: dict[str, int | None] = {}


def updated_instant(value: object) -> int | None:
    """The instant of an ``updated_at`` value, ``None`` when unparseable.

    Fast path for ``YYYY-MM-DDTHH:MM:SS±hh:mm`` (a cached midnight plus the seconds);
    anything else goes through ``validation.parse_timestamp``.
    """
    if isinstance(value, str) and len(value) == 25 and value[10] == "T" and value[13] == value[16] == ":":
        hh, mm, ss = value[11:13], value[14:16], value[17:19]
        if hh.isdigit() and mm.isdigit() and ss.isdigit() and hh < "24" and mm < "60" and ss < "60":
            day = value[:10] + value[19:]
            if day not in _midnights:
                midnight = parse_timestamp(f"{value[:10]}T00:00:00{value[19:]}")
                _midnights[day] = None if midnight is None else instant_us(midnight)
            if (base := _midnights[day]) is not None:
                return base + (int(hh) * 3600 + int(mm) * 60 + int(ss)) * 1_000_000
    ts = parse_timestamp(value)
    return None if ts is None else instant_us(ts)


def _key_text(record: dict, key: tuple[str, ...]) -> str:
    """A sortable text for the key fields; absent or odd values must not break sorting."""
    return "\x1f".join(v if isinstance(v, str) else json.dumps(v) for v in (record.get(k, "") for k in key))


@dataclass
class Table:
    """One resource: its file bytes and line offsets sorted by (instant, key)."""

    name: str
    key: tuple[str, ...]
    data: bytes
    instants: array
    starts: array
    ends: array

    def __len__(self) -> int:
        return len(self.instants)

    def line(self, i: int) -> bytes:
        return self.data[self.starts[i]:self.ends[i]]

    def key_text(self, i: int) -> str:
        return _key_text(_decode(self.line(i)), self.key)  # leniently: a line may hold bytes that are not UTF-8


_scan = json.scanner.make_scanner(json.JSONDecoder())  # one C call per line, no wrappers


def _decode(line: bytes) -> object:
    """The JSON value of ``line``; ``None`` when it is not exactly one JSON value."""
    text = line.decode("utf-8", "replace").strip()
    try:
        value, end = _scan(text, 0)
    except (StopIteration, RecursionError):
        return None
    return value if end == len(text) else None


def load_table(resource: R.Resource, path: Path) -> Table:
    """Index ``path`` (missing = empty); unplaceable lines are skipped with a warning."""
    try:
        data = path.read_bytes() if path.exists() else b""
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}; it must be a JSON Lines file") from None
    instants, starts, ends = array("q"), array("q"), array("q")
    start, lineno = 0, 0
    while start < len(data):
        end = data.find(b"\n", start)
        end = len(data) if end < 0 else end
        lineno += 1
        line = data[start:end]
        if line and not line.isspace():
            record = _decode(line)
            if not isinstance(record, dict):
                print(f"warning: {path}:{lineno}: skipped, not a JSON object", file=sys.stderr)
            elif (instant := updated_instant(record.get("updated_at"))) is None:
                print(f"warning: {path}:{lineno}: skipped, no parseable updated_at (ISO-8601 with an offset)", file=sys.stderr)
            else:
                instants.append(instant)
                starts.append(start)
                ends.append(end)
        start = end + 1
    table = Table(resource.name, resource.key, data, instants, starts, ends)
    order = sorted(range(len(instants)), key=instants.__getitem__)  # stable: ties keep file order
    _order_ties_by_key(table, order)
    table.instants, table.starts, table.ends = (array("q", (a[i] for i in order)) for a in (instants, starts, ends))
    return table


def _order_ties_by_key(table: Table, order: list[int]) -> None:
    """Within runs of equal instants (rare in generated data), order by key text."""
    instants, run = table.instants, 0
    for pos in range(1, len(order) + 1):
        if pos == len(order) or instants[order[pos]] != instants[order[run]]:
            if pos - run > 1:
                order[run:pos] = sorted(order[run:pos], key=table.key_text)
            run = pos


def load_dataset(data_dir: Path | str) -> dict[str, Table]:
    """Every registry resource of ``data_dir`` (one ``<resource>.jsonl`` each; a missing one is empty, but
    a directory with none of them is no dataset)."""
    if not any((Path(data_dir) / f"{r.name}.jsonl").exists() for r in R.RESOURCES):
        raise UserError(f"{data_dir} holds none of the resource files ({R.RESOURCES[0].name}.jsonl, ...); give a "
                        "dataset directory made by `creditplus platform generate`")
    return {r.name: load_table(r, Path(data_dir) / f"{r.name}.jsonl") for r in R.RESOURCES}


def encode_token(resource: str, instant: int, key_text: str, seen: int) -> str:
    """A signed cursor: the page ended on the ``seen``-th version with this (instant, key)."""
    payload = json.dumps([resource, instant, key_text, seen], ensure_ascii=False).encode()
    mac = hmac.new(_TOKEN_KEY, payload, hashlib.sha256).digest()[:12]
    return base64.urlsafe_b64encode(mac + payload).decode().rstrip("=")


def decode_token(resource: str, token: str) -> tuple[int, str, int]:
    """The (instant, key text, seen) a page ended on; ``ValueError`` when forged or foreign."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except ValueError:
        raise ValueError("not a page token") from None
    mac, payload = raw[:12], raw[12:]
    if not hmac.compare_digest(mac, hmac.new(_TOKEN_KEY, payload, hashlib.sha256).digest()[:12]):
        raise ValueError("not a page token from this server (altered or made up)")
    name, instant, key_text, seen = json.loads(payload)
    if name != resource:
        raise ValueError(f"the page token belongs to resource {name!r}")
    return instant, key_text, seen


class BadParameter(ValueError):
    pass


def _timestamp_param(request: Request, name: str) -> int | None:
    text = request.query_params.get(name)
    if text is None or text == "":
        return None
    ts = parse_timestamp(text.replace(" ", "+"))  # an unencoded '+' arrives as a space
    if ts is None:
        raise BadParameter(f"{name} must be an ISO-8601 timestamp with an offset, e.g. 2026-11-26T00:00:00+08:00; got {text!r}")
    return instant_us(ts)


def _page_size(request: Request) -> int:
    text = request.query_params.get("page_size")
    if text is None:
        return DEFAULT_PAGE_SIZE
    if not text.isdigit() or not 1 <= int(text) <= MAX_PAGE_SIZE:
        raise BadParameter(f"page_size must be an integer from 1 to {MAX_PAGE_SIZE}; got {text!r}")
    return int(text)


def _start(table: Table, request: Request, after: int | None) -> int:
    """Index of the first candidate: after ``updated_after`` and after the page token."""
    start = 0 if after is None else bisect.bisect_right(table.instants, after)
    token = request.query_params.get("page_token")
    if token:
        try:
            instant, key_text, seen = decode_token(table.name, token)
        except (ValueError, TypeError) as exc:
            raise BadParameter(f"page_token is invalid ({exc}); pass next_page_token of the previous page unchanged") from None
        lo = bisect.bisect_left(table.instants, instant)
        hi = bisect.bisect_right(table.instants, instant, lo)
        first = bisect.bisect_left(range(len(table)), key_text, lo, hi, key=table.key_text)
        after = bisect.bisect_right(range(len(table)), key_text, first, hi, key=table.key_text)
        start = max(start, min(first + seen, after))  # duplicates of the last version: skip only those served
    return start


def _cursor(table: Table, i: int) -> tuple[int, str, int]:
    """Cursor after position ``i``: its (instant, key) and how many such versions end at ``i``."""
    key_text, first = table.key_text(i), i
    while first > 0 and table.instants[first - 1] == table.instants[i] and table.key_text(first - 1) == key_text:
        first -= 1
    return table.instants[i], key_text, i - first + 1


def _error(status: int, message: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(dataset: dict[str, Table], token: str, faults: Faults) -> Starlette:
    """The Starlette app serving ``dataset`` behind bearer ``token`` with ``faults``."""
    expected_auth = f"Bearer {token}".encode()
    listing = {"resources": [{"name": r.name, "key": list(r.key)} for r in R.RESOURCES]}

    def authorized(request: Request) -> bool:
        return hmac.compare_digest(request.headers.get("authorization", "").encode(), expected_auth)

    async def healthz(request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def resources(request: Request) -> Response:
        if not authorized(request):
            return _unauthorized()
        return JSONResponse(listing)

    async def records(request: Request) -> Response:
        if not authorized(request):
            return _unauthorized()
        name = request.path_params["resource"]
        table = dataset.get(name)
        if table is None:
            return _error(404, f"unknown resource {name!r}; GET /api/v1/resources lists the {len(dataset)} resources")
        try:
            after = _timestamp_param(request, "updated_after")
            before = _timestamp_param(request, "updated_before")
            size = _page_size(request)
            start = _start(table, request, after)
        except BadParameter as exc:
            return _error(400, str(exc))
        status, slow, truncated, duplicate = faults.request_faults()
        if status == 429:
            return _error(429, "rate limited; retry after the Retry-After seconds", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        if status:
            return _error(status, "transient platform error; retry")
        if slow:
            await asyncio.sleep(SLOW_SECONDS)
        stop = len(table) if before is None else bisect.bisect_left(table.instants, before)
        end = min(start + size, stop)
        items = _items(table, start, end, faults, before)
        if duplicate:
            faults.duplicate(items)
        next_token = encode_token(name, *_cursor(table, end - 1)) if end < stop else None
        body = b"".join((b'{"resource":', json.dumps(name).encode(), b',"items":[', b",".join(items),
                         b'],"next_page_token":', json.dumps(next_token).encode(), b"}"))
        if truncated:
            body = body[:len(body) // 2]
        return Response(body, media_type="application/json")

    return Starlette(routes=[
        Route("/healthz", healthz),
        Route("/api/v1/resources", resources),
        Route("/api/v1/resources/{resource}", records),
    ])


def _items(table: Table, start: int, end: int, faults: Faults, before: int | None) -> list[bytes]:
    """The original lines of positions ``start..end``, with late and malformed faults."""
    data, starts, ends = table.data, table.starts, table.ends
    if not faults.record_faults:
        return [data[starts[i]:ends[i]] for i in range(start, end)]
    reference = instant_us(dt.datetime.now(dt.timezone.utc)) if before is None else before
    items = []
    for i in range(start, end):
        line = data[starts[i]:ends[i]]
        if faults.is_late(line, table.instants[i], reference):
            continue
        items.append(line)
        if (bad := faults.malformed(table.name, line)) is not None:
            items.append(bad)
    return items


def _unauthorized() -> JSONResponse:
    return _error(401, "missing or wrong bearer token; send Authorization: Bearer <token>", {"WWW-Authenticate": "Bearer"})


def _server(app: Starlette, **config) -> uvicorn.Server:
    return uvicorn.Server(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off", **config))


@contextlib.contextmanager
def running(data_dir: Path | str, *, token: str = "test-token", faults: str = "", fault_seed: int = 0,
            host: str = "127.0.0.1") -> Iterator[str]:
    """Serve ``data_dir`` on a free port in a background thread; yields the base URL."""
    app = create_app(load_dataset(data_dir), token, Faults(parse_spec(faults), fault_seed))
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.bind((host, 0))
    server = _server(app)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="platform-simulator")
    thread.start()
    try:
        while not server.started:
            if not thread.is_alive():
                raise RuntimeError(f"the platform simulator failed to start on {host}")
            time.sleep(0.01)
        port = sock.getsockname()[1]
        yield f"http://{f'[{host}]' if ':' in host else host}:{port}"
    finally:
        server.should_exit = True
        thread.join()
        sock.close()


def _token(args) -> str:
    """The bearer token: ``--token-file``, else ``--token`` (with a warning: a command line is public to every
    local user), else ``$CREDITPLUS_PLATFORM_TOKEN``, else ``dev-token``. What the command line names wins
    over the environment, as it did before ``--token-file``."""
    if args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"cannot read the token file {args.token_file}: {exc.strerror if isinstance(exc, OSError) else exc}") from None
        if not token:
            raise UserError(f"the token file {args.token_file} is empty; write the bearer token into it")
        return token
    if args.token:
        print("warning: --token shows the token to every local user in the process list; "
              "use CREDITPLUS_PLATFORM_TOKEN or --token-file", file=sys.stderr)
    return args.token or os.environ.get("CREDITPLUS_PLATFORM_TOKEN") or "dev-token"


def main(args) -> int:
    """``creditplus platform serve``: serve ``args.data`` in the foreground until Ctrl-C/SIGTERM."""
    token = _token(args)
    faults = Faults(parse_spec(args.faults), args.fault_seed)
    started = time.monotonic()
    dataset = load_dataset(args.data)
    counts = ", ".join(f"{name} {len(table)}" for name, table in dataset.items())
    print(f"creditplus platform: {sum(map(len, dataset.values()))} record versions loaded from {args.data} "
          f"in {time.monotonic() - started:.1f} s ({counts})")
    on = "; ".join(f"{k}={v}: {FAULT_KINDS[k].effect}" for k, v in faults.rates.items() if v) or "none"
    print(f"creditplus platform: serving http://{args.host}:{args.port} (faults: {on}, seed {args.fault_seed}); Ctrl-C stops",
          flush=True)
    server = _server(create_app(dataset, token, faults), host=args.host, port=args.port)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then re-raises the signal to the
    # handler it found: a no-op for SIGTERM and KeyboardInterrupt for SIGINT end here.
    signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    print("creditplus platform: stopped", flush=True)
    return 0
