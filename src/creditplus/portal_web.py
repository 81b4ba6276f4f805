"""``creditplus portal serve``: the read-only web portal — a public grade lookup (第十二条) and each
enterprise's own evaluation after sign-in (第十四条).

It reads channel views only, each as its channel's role: the lookup reads ``public_query`` as
``public_reader``; an enterprise's page reads ``enterprise_self`` as ``enterprise_portal`` after
``enterprise_self.enter(session token)`` in that request's own transaction, so a pooled connection
carries nothing to the next request (``sql/setup/065_portal_identity.sql``). In production each role is a
login user of its own (``CREDITPLUS_PORTAL_PUBLIC_URL``, ``CREDITPLUS_PORTAL_ENTERPRISE_URL``, made with
``creditplus access grant``); without them the portal connects to the warehouse and takes the channel's
group role for each transaction (``SET LOCAL ROLE``), which suits a demo. Every asset is served here.
"""
from __future__ import annotations

import collections
import contextlib
import os
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import jinja2
import psycopg
from psycopg import sql
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool
from starlette.applications import Starlette
from starlette.datastructures import Headers, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from creditplus import config, portal, warehouse
from creditplus.errors import UserError

PUBLIC_URL_ENV = "CREDITPLUS_PORTAL_PUBLIC_URL"
ENTERPRISE_URL_ENV = "CREDITPLUS_PORTAL_ENTERPRISE_URL"
SESSION_COOKIE = "creditplus_session"
USCC_LIKE = re.compile(r"[0-9A-Z]{18}")
# B1..B4, O1..O11, S1..S6 as the model lists them (not O1, O10, O11, O2)
INDICATOR_ORDER = "left(indicator_code, 1) <> 'B', left(indicator_code, 1) <> 'O', length(indicator_code), indicator_code"
NAME_RESULTS = 20
# Failed sign-ins: per client and code, and per client whatever the code, within the window.
FAILURE_WINDOW = 15 * 60
MAX_FAILURES_PER_CODE = 5
MAX_FAILURES_PER_CLIENT = 20
TEMPLATES = Path(__file__).parent / "templates" / "portal"
STATIC = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "content-security-policy": "default-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none';"
                               " base-uri 'none'",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",  # no-referrer would make browsers send "Origin: null" on our own forms
    "cache-control": "no-store",
}


class Hardened:
    """ASGI middleware: the security headers on every response (pages, redirects, assets), and a POST only from the
    portal's own pages — a cross-site form (login CSRF) is refused."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = Headers(scope=scope)
        origin, own = headers.get("origin"), f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
        if scope["method"] == "POST" and (headers.get("sec-fetch-site", "same-origin") not in ("same-origin", "none")
                                          or (origin is not None and origin != own)):
            return await PlainTextResponse("cross-site form refused", status_code=403)(scope, receive, send)

        async def send_hardened(message):
            if message["type"] == "http.response.start":
                MutableHeaders(scope=message).update(SECURITY_HEADERS)
            await send(message)

        await self.app(scope, receive, send_hardened)


class Attempts:
    """Failed sign-ins remembered in this process (one portal process; a restart forgets them): past the limits
    a client waits until its oldest failure leaves the window."""

    def __init__(self) -> None:
        self.failures: dict[tuple, collections.deque] = collections.defaultdict(collections.deque)
        self.lock = threading.Lock()

    def _keys(self, client: str, uscc: str) -> tuple[tuple[tuple, int], ...]:
        return ((client, uscc), MAX_FAILURES_PER_CODE), ((client,), MAX_FAILURES_PER_CLIENT)

    def wait(self, client: str, uscc: str) -> float:
        """Seconds before this client may try this code again (0: now); forgets failures past the window."""
        now = time.monotonic()
        with self.lock:
            waits = [0.0]
            for key, limit in self._keys(client, uscc):
                times = self.failures.get(key)
                while times and times[0] <= now - FAILURE_WINDOW:
                    times.popleft()
                if times is not None and not times:
                    del self.failures[key]
                elif times is not None and len(times) >= limit:
                    waits.append(times[0] + FAILURE_WINDOW - now)
            return max(waits)

    def failed(self, client: str, uscc: str) -> None:
        with self.lock:
            for key, _ in self._keys(client, uscc):
                self.failures[key].append(time.monotonic())

    def succeeded(self, client: str, uscc: str) -> None:
        with self.lock:
            self.failures.pop((client, uscc), None)


class Readers:
    """One small pool per channel; each request reads in one transaction as the channel's role."""

    def __init__(self, public_url: str | None, enterprise_url: str | None, warehouse_url: str):
        def pool(url: str | None, name: str) -> tuple[ConnectionPool, str | None]:
            made = ConnectionPool(url or warehouse_url, min_size=1, max_size=4, name=name, open=False,
                                  kwargs={"autocommit": True})
            return made, None if url else name

        self.public, self.public_role = pool(public_url, "public_reader")
        self.enterprise, self.enterprise_role = pool(enterprise_url, "enterprise_portal")

    def open(self) -> None:
        for each in (self.public, self.enterprise):
            each.open(wait=True, timeout=15)

    def close(self) -> None:
        for each in (self.public, self.enterprise):
            each.close()

    @contextlib.contextmanager
    def _reading(self, pool: ConnectionPool, role: str | None) -> Iterator[psycopg.Connection]:
        with pool.connection() as conn, conn.transaction():
            conn.execute("set local timezone to 'Asia/Shanghai'")  # times shown as the bureau reads them (+08:00)
            if role:  # no login user of its own: take the channel's group role for this transaction only
                conn.execute(sql.SQL("set local role {}").format(sql.Identifier(role)))
            conn.row_factory = dict_row
            yield conn

    def reading_public(self):
        return self._reading(self.public, self.public_role)

    def reading_enterprise(self):
        return self._reading(self.enterprise, self.enterprise_role)


def _client(request: Request) -> str:
    return request.client.host if request.client else "-"


def create_app(readers: Readers) -> Starlette:
    # autoescape for every template: Starlette's default escapes only names ending .html/.htm/.xml, not .html.j2
    templates = Jinja2Templates(env=jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True))
    attempts = Attempts()

    def page(request: Request, name: str, status: int = 200, **context) -> Response:
        return templates.TemplateResponse(request, name, context, status_code=status)

    def home(request: Request) -> Response:
        return page(request, "home.html.j2")

    def lookup(request: Request) -> Response:
        query = request.query_params.get("q", "").strip()
        if len(query) < 2:
            return page(request, "home.html.j2", 400, message="请输入统一社会信用代码或至少两个字的企业名称。"
                                                              " Enter a credit code, or at least two characters of a name.")
        code = query.upper()
        with readers.reading_public() as conn:
            if USCC_LIKE.fullmatch(code):
                rows = conn.execute("select uscc, enterprise_name, grade, evaluation_date from public_query.credit_grades"
                                    " where uscc = %s", (code,)).fetchall()
            else:
                pattern = "%" + re.sub(r"([\\%_])", r"\\\1", query) + "%"
                rows = conn.execute("select uscc, enterprise_name, grade, evaluation_date from public_query.credit_grades"
                                    " where enterprise_name like %s order by enterprise_name, uscc limit %s",
                                    (pattern, NAME_RESULTS + 1)).fetchall()
        if not rows:
            return page(request, "not_found.html.j2", 404, query=query)
        return page(request, "lookup.html.j2", query=query, rows=rows[:NAME_RESULTS], more=len(rows) > NAME_RESULTS)

    async def login(request: Request) -> Response:
        if request.method == "GET":
            return page(request, "login.html.j2", expired="expired" in request.query_params)
        form = await request.form()
        uscc, credential = str(form.get("uscc", "")).strip().upper(), str(form.get("credential", "")).strip()
        if not USCC_LIKE.fullmatch(uscc):  # not a code: nothing to try, nothing to remember
            return page(request, "login.html.j2", 401, refused=True)
        client = _client(request)
        if (wait := attempts.wait(client, uscc)) > 0:
            response = page(request, "login.html.j2", 429, uscc=uscc, locked_minutes=max(1, round(wait / 60)))
            response.headers["retry-after"] = str(int(wait) + 1)
            return response
        token = None
        if credential:
            with readers.reading_enterprise() as conn:
                token = portal.sign_in(conn, credential)
        if token is None or token.split(".")[1] != uscc:
            attempts.failed(client, uscc)
            return page(request, "login.html.j2", 401, uscc=uscc, refused=True)
        attempts.succeeded(client, uscc)
        response = RedirectResponse(f"/enterprise/{uscc}", status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", path="/",
                            secure=request.url.scheme == "https", max_age=30 * 60)
        return response

    def enterprise(request: Request) -> Response:
        uscc = request.path_params["uscc"]
        token = request.cookies.get(SESSION_COOKIE)
        if not token:
            return RedirectResponse("/login", status_code=303)
        with readers.reading_enterprise() as conn:
            verified = portal.enter_session(conn, token)
            if verified is None:  # expired, revoked or forged: sign in again
                response = RedirectResponse("/login?expired", status_code=303)
                response.delete_cookie(SESSION_COOKIE, path="/")
                return response
            if verified != uscc:
                return page(request, "forbidden.html.j2", 403, own=verified)
            detail = conn.execute(f"select * from enterprise_self.evaluation_detail order by {INDICATOR_ORDER}").fetchall()
            explained = conn.execute("select * from enterprise_self.indicator_explanations"
                                     " order by indicator_code, record_date nulls first, record_key").fetchall()
            objections = conn.execute("select * from enterprise_self.objections order by submitted_at desc").fetchall()
        explanations = collections.defaultdict(list)
        for row in explained:
            explanations[row["indicator_code"]].append(row)
        return page(request, "enterprise.html.j2", uscc=uscc, detail=detail, evaluation=detail[0] if detail else None,
                    explanations=explanations, caps=explanations.get(None, []), objections=objections)

    def logout(request: Request) -> Response:
        response = RedirectResponse("/", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    return Starlette(routes=[
        Route("/", home),
        Route("/lookup", lookup),
        Route("/login", login, methods=["GET", "POST"]),
        Route("/enterprise/{uscc}", enterprise),
        Route("/logout", logout, methods=["POST"]),
        Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
    ], middleware=[Middleware(Hardened)], lifespan=_lifespan(readers))


def _lifespan(readers: Readers):
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette):
        readers.open()
        try:
            yield
        finally:
            readers.close()

    return lifespan


def readers_from_environment() -> Readers:
    return Readers(os.environ.get(PUBLIC_URL_ENV) or None, os.environ.get(ENTERPRISE_URL_ENV) or None,
                   config.configured_warehouse_url() or warehouse.url())


def serve_command(args) -> int:
    """``creditplus portal serve``: serve until interrupted."""
    import uvicorn

    readers = readers_from_environment()
    for env, pool in ((PUBLIC_URL_ENV, readers.public), (ENTERPRISE_URL_ENV, readers.enterprise)):
        try:
            warehouse.check(pool.conninfo)
        except warehouse.WarehouseError as exc:
            raise UserError(f"{exc} (the portal reads with {env}, else the warehouse URL)") from None
    if readers.public_role or readers.enterprise_role:
        print(f"portal: {PUBLIC_URL_ENV} / {ENTERPRISE_URL_ENV} unset: reading as the channels' group roles over the "
              "warehouse connection (a demo; give each channel a login user of its own in production)")
    print(f"portal: http://{args.host}:{args.port}/ (Ctrl-C stops it)", flush=True)
    uvicorn.run(create_app(readers), host=args.host, port=args.port, log_level="warning")
    return 0
