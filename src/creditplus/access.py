"""``creditplus access grant|revoke``: an agency's login user joins or leaves a channel's group role.

The password comes from ``CREDITPLUS_ACCESS_PASSWORD`` or, when that is unset, from piped
stdin (never from the command line). It is hashed by libpq (SCRAM, the server's
``password_encryption``) before it is sent, so it never appears in SQL text or server logs.
"""
from __future__ import annotations

import os
import re
import sys

import psycopg
from psycopg import sql

from creditplus import channels, warehouse
from creditplus.errors import UserError

PASSWORD_ENV = "CREDITPLUS_ACCESS_PASSWORD"
SAFE_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")
RESERVED = frozenset({"postgres", "public", "none", "user", "current_user", "session_user", "current_role",
                      channels.PORTAL_OWNER}) | channels.GROUP_ROLES
# An existing role with any of these is not an agency's reader and is never touched.
PRIVILEGED = ("rolsuper", "rolcreaterole", "rolcreatedb", "rolreplication", "rolbypassrls")


def grant(args) -> int:
    """Create or update login user ``args.user`` and make it a member of ``args.channel``'s group."""
    channel, user = channels.channel(args.channel), _safe_name(args.user)
    password = _password()
    with warehouse.connect() as conn, conn.transaction():
        _group_exists(conn, channel)
        exists = _check_existing(conn, user)
        if not exists and password is None:
            raise UserError(f"{user!r} is a new user and needs a password: pipe it on stdin or set {PASSWORD_ENV}")
        statement = sql.SQL("alter role {} login" if exists else "create role {} login").format(sql.Identifier(user))
        if password is not None:
            verifier = conn.pgconn.encrypt_password(password.encode(), user.encode()).decode()
            statement += sql.SQL(" password {}").format(sql.Literal(verifier))
        conn.execute(statement)
        conn.execute(sql.SQL("grant {} to {}").format(sql.Identifier(channel.role), sql.Identifier(user)))
    done = "updated" if exists else "created"
    print(f"{done} login user {user}{' with a new password' if password is not None and exists else ''}; "
          f"member of {channel.role} (channel {channel.name})")
    return 0


def revoke(args) -> int:
    """Remove login user ``args.user`` from ``args.channel``'s group; the user itself stays."""
    channel, user = channels.channel(args.channel), _safe_name(args.user)
    with warehouse.connect() as conn, conn.transaction():
        if not conn.execute("select 1 from pg_roles where rolname = %s", (user,)).fetchone():
            raise UserError(f"there is no user {user!r}")
        _group_exists(conn, channel)
        member = conn.execute("select exists (select from pg_auth_members"
                              " where member = to_regrole(%s) and roleid = to_regrole(%s))",
                              (user, channel.role)).fetchone()[0]
        if member:
            conn.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(channel.role), sql.Identifier(user)))
    if member:
        print(f"revoked: {user} is no longer a member of {channel.role} (channel {channel.name})")
    else:
        print(f"{user} was not a member of {channel.role} (channel {channel.name}); nothing changed")
    return 0


def _safe_name(name: str) -> str:
    if not SAFE_NAME.fullmatch(name):
        raise UserError(f"unsafe user name {name!r}: use 1-63 lower-case letters, digits and _, not starting with a digit")
    if name in RESERVED or name.startswith("pg_"):
        raise UserError(f"{name!r} is a reserved or built-in role name; choose the agency user's own name")
    return name


def _check_existing(conn: psycopg.Connection, user: str) -> bool:
    """Whether ``user`` exists; refuses a privileged role, the caller, or a group with members."""
    row = conn.execute(
        sql.SQL("select {privileged}, r.rolname = current_user,"
                " exists (select from pg_auth_members m where m.roleid = r.oid),"
                " exists (select from pg_auth_members m join pg_roles g on g.oid = m.roleid"
                "         where m.member = r.oid and g.rolname like 'pg\\_%%')"
                " from pg_roles r where r.rolname = %s").format(
            privileged=sql.SQL(" or ").join(sql.Identifier("r", a) for a in PRIVILEGED)),
        (user,)).fetchone()
    if row is None:
        return False
    privileged, is_caller, is_group, has_builtin = row
    if privileged or is_caller or has_builtin:
        raise UserError(f"{user!r} is a privileged role (superuser, admin or built-in member); "
                        "channel access is only for agency login users")
    if is_group:
        raise UserError(f"{user!r} is a group role with members, not a login user")
    return True


def _group_exists(conn: psycopg.Connection, channel: channels.Channel) -> None:
    if not conn.execute("select 1 from pg_roles where rolname = %s", (channel.role,)).fetchone():
        raise UserError(f"group role {channel.role} does not exist: run `creditplus setup` first")


def _password() -> str | None:
    """The password from the environment or piped stdin; None when neither gives one."""
    password = os.environ.get(PASSWORD_ENV)
    if password is None and sys.stdin is not None and not sys.stdin.isatty():
        password = sys.stdin.readline().rstrip("\r\n") or None
    if password is not None and (not password or "\n" in password):
        raise UserError(f"{PASSWORD_ENV} must be a non-empty single line")
    return password
