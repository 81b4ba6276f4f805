"""The warehouse: connection URL (configured or embedded), connections, idempotent setup."""
from __future__ import annotations

import os
import re
import socket
import time
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from creditplus import config
from creditplus.channels import GROUP_ROLES
from creditplus.errors import UserError
from creditplus.resources import RESOURCES, Resource

EMBEDDED_DB = "creditplus"


class WarehouseError(UserError):
    """The warehouse cannot be reached, or its URL is wrong: one line naming what to fix."""


# ---------------------------------------------------------------- embedded server
def _embedded_dirs() -> tuple[Path, Path]:
    base = config.home() / "pg"
    return base / "data", base / "port"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nothing listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accepting(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def start_embedded() -> str:
    """Start (or find running) the embedded PostgreSQL on loopback TCP; return its URL.

    pgserver's own start listens on a unix socket only, which Cosmos and GX cannot use,
    so its bundled binaries are run directly with ``-h 127.0.0.1``. The server outlives
    the process that started it (Airflow runs in other processes); ``stop_embedded`` ends it.
    """
    from pgserver._commands import initdb, pg_ctl

    pgdata, port_file = _embedded_dirs()
    if port_file.exists() and _accepting(int(port_file.read_text())):
        return _embedded_url(int(port_file.read_text()))
    user = None
    if os.geteuid() == 0:  # postgres refuses to run as root: use pgserver's system user
        from pgserver.utils import ensure_prefix_permissions, ensure_user_exists
        import pwd

        user = "pgserver"
        ensure_user_exists(user)
        pgdata.mkdir(parents=True, exist_ok=True)
        ensure_prefix_permissions(pgdata)
        pw = pwd.getpwnam(user)
        os.chown(pgdata, pw.pw_uid, pw.pw_gid)
    else:
        pgdata.mkdir(parents=True, exist_ok=True)
    if not (pgdata / "PG_VERSION").exists():
        initdb(["--auth=trust", "--encoding=utf8", "--locale=C", "-U", "postgres"], pgdata=pgdata, user=user)
    port = free_port()
    pg_ctl(["-w", "-o", f"-h 127.0.0.1 -p {port} -k {pgdata}", "-l", str(pgdata / "server.log"), "start"],
           pgdata=pgdata, user=user, timeout=60)
    port_file.write_text(str(port))
    url = _embedded_url(port)
    with psycopg.connect(_embedded_url(port, "postgres"), autocommit=True) as conn:
        if not conn.execute("select 1 from pg_database where datname = %s", (EMBEDDED_DB,)).fetchone():
            conn.execute(sql.SQL("create database {}").format(sql.Identifier(EMBEDDED_DB)))
    return url


def stop_embedded() -> None:
    from pgserver._commands import pg_ctl

    pgdata, port_file = _embedded_dirs()
    if (pgdata / "postmaster.pid").exists():
        pg_ctl(["-w", "stop", "-m", "fast"], pgdata=pgdata, user="pgserver" if os.geteuid() == 0 else None)
    port_file.unlink(missing_ok=True)


def _embedded_url(port: int, db: str = EMBEDDED_DB) -> str:
    return f"postgresql://postgres@127.0.0.1:{port}/{db}"


def url() -> str:
    """The warehouse URL: ``CREDITPLUS_WAREHOUSE_URL`` or the embedded server (started on demand)."""
    return config.configured_warehouse_url() or start_embedded()


def dbt_env(warehouse_url: str | None = None) -> dict[str, str]:
    """The ``CREDITPLUS_PG*`` variables that ``dbt_project/profiles.yml`` reads."""
    parts = urlsplit(warehouse_url or url())
    return {
        "CREDITPLUS_PGHOST": parts.hostname or "127.0.0.1",
        "CREDITPLUS_PGPORT": str(parts.port or 5432),
        "CREDITPLUS_PGUSER": parts.username or "postgres",
        "CREDITPLUS_PGPASSWORD": parts.password or "",
        "CREDITPLUS_PGDATABASE": parts.path.lstrip("/") or "postgres",
    }


def connect(warehouse_url: str | None = None, **kwargs) -> psycopg.Connection:
    target = warehouse_url or url()
    last: Exception | None = None
    for _ in range(20):  # a server that was just started may still be coming up
        try:
            return psycopg.connect(target, **kwargs)
        except psycopg.ProgrammingError as exc:  # the URL itself cannot be parsed
            raise WarehouseError(f"the warehouse URL is malformed ({redact(' '.join(str(exc).split()))}): fix "
                                 "CREDITPLUS_WAREHOUSE_URL (postgresql://user@host:port/database)") from None
        except psycopg.OperationalError as exc:
            last = exc
            if "does not exist" in str(exc) or "authentication" in str(exc):
                break  # no wait makes these right
            time.sleep(0.25)
    reason = redact(" ".join(str(last).split()))
    raise WarehouseError(f"cannot connect to the warehouse at {redact(target)}: {reason}; "
                         "check CREDITPLUS_WAREHOUSE_URL and that the server runs")


# A password in a URL's user info, or a ``password=`` setting (keyword/value form, or a URL's query).
_URL_PASSWORD = re.compile(r"(://[^:/@\s\"']*:)([^@\s\"'/]+)(@)")
_PASSWORD_SETTING = re.compile(r"(?i)(\b(?:ssl)?password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s&\"]+)")


def redact(text: str) -> str:
    """``text`` (a connection URL or keyword/value string, or a message quoting one) with every password
    replaced by ``***``."""
    return _PASSWORD_SETTING.sub(r"\1***", _URL_PASSWORD.sub(r"\1***\3", text))


def check(warehouse_url: str) -> None:
    """The warehouse answers (else ``WarehouseError``, one line): checked before a night starts."""
    with connect(warehouse_url) as conn:
        conn.execute("select 1")


# ---------------------------------------------------------------- setup (idempotent)
def raw_table_ddl(res: Resource) -> sql.Composed:
    keys = [sql.Identifier(k) for k in res.key]
    return sql.SQL(
        "create table if not exists raw.{table} ("
        " {key_cols}, updated_at timestamptz not null, record jsonb not null,"
        " _load_id text not null, _loaded_at timestamptz not null default now(),"
        " unique ({keys}, updated_at))"
    ).format(
        table=sql.Identifier(res.name),
        key_cols=sql.SQL(", ").join(sql.SQL("{} text not null").format(k) for k in keys),
        keys=sql.SQL(", ").join(keys),
    )


SETUP_DIR = Path(__file__).parent / "sql" / "setup"


def setup(conn: psycopg.Connection) -> list[str]:
    """Create schemas, tables, roles and views; running it again changes nothing.

    Every script under ``sql/setup/`` must be idempotent (``if not exists``, ``or replace``).
    Returns the login users that connected here only through a channel group (as setups before access was
    per database allowed) and now need ``creditplus access grant`` again in their own warehouse.
    """
    with conn.transaction():
        conn.execute("select pg_advisory_xact_lock(hashtext('creditplus.setup'))")
        through_groups = _connecting_through_groups(conn)
        conn.execute("create schema if not exists raw")
        for res in RESOURCES:
            conn.execute(raw_table_ddl(res))
        for script in sorted(SETUP_DIR.glob("*.sql")):  # one file per concern, run in name order
            conn.execute(script.read_text())
    return through_groups


def _connecting_through_groups(conn: psycopg.Connection) -> list[str]:
    return [name for name, in conn.execute(
        "select distinct m.rolname::text from pg_database d cross join aclexplode(d.datacl) a"
        " join pg_auth_members am on am.roleid = a.grantee join pg_roles m on m.oid = am.member"
        " where d.datname = current_database() and a.privilege_type = 'CONNECT' and m.rolcanlogin"
        " and a.grantee::regrole::text = any(%s)"
        " and not exists (select from aclexplode(d.datacl) own where own.grantee = m.oid) order by 1",
        (sorted(GROUP_ROLES),))]


def regrant_notice(through_groups: list[str]) -> str:
    return (f"channel access is now per database: {', '.join(through_groups)} no longer connect here through "
            "their channel group; grant each again in its own warehouse with `creditplus access grant`")


def setup_command(args) -> int:
    """``creditplus setup``."""
    with connect() as conn:
        through_groups = setup(conn)
    print(f"warehouse ready at {redact(url())}")
    if through_groups:
        print(regrant_notice(through_groups))
    return 0
