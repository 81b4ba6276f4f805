"""``creditplus access grant|revoke``: an agency's login user joins or leaves a channel's group role.

What a grant gives stays in its own warehouse database: the user gets CONNECT on this database (the groups have
none), and a user that could connect to another warehouse on the same server is refused, because the group
roles the spec names are server-wide.

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
        conn.execute(sql.SQL("grant connect on database {} to {}").format(_database(conn), sql.Identifier(user)))
        _refuse_other_warehouses(conn, user)
    done = "updated" if exists else "created"
    print(f"{done} login user {user}{' with a new password' if password is not None and exists else ''}; "
          f"member of {channel.role} (channel {channel.name})")
    return 0


def revoke(args) -> int:
    """Remove login user ``args.user`` from ``args.channel``'s group; the user itself stays."""
    channel, user = channels.channel(args.channel), _safe_name(args.user)
    with warehouse.connect() as conn, conn.transaction():
        if not _check_existing(conn, user):  # nor a privileged role or a group, whose CONNECT is not ours to take
            raise UserError(f"there is no user {user!r}")
        _group_exists(conn, channel)
        member = conn.execute("select exists (select from pg_auth_members"
                              " where member = to_regrole(%s) and roleid = to_regrole(%s))",
                              (user, channel.role)).fetchone()[0]
        last = False
        if member:
            conn.execute(sql.SQL("revoke {} from {}").format(sql.Identifier(channel.role), sql.Identifier(user)))
            last = not conn.execute("select exists (select from pg_auth_members where member = to_regrole(%s)"
                                    " and roleid::regrole::text = any(%s))",
                                    (user, sorted(channels.GROUP_ROLES))).fetchone()[0]
        if last:  # in no channel any more: it no longer connects here either
            conn.execute(sql.SQL("revoke connect on database {} from {}").format(_database(conn), sql.Identifier(user)))
    if member:
        print(f"revoked: {user} is no longer a member of {channel.role} (channel {channel.name})"
              + ("; in no channel any more, it can no longer connect" if last else ""))
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


def _database(conn: psycopg.Connection) -> sql.Identifier:
    return sql.Identifier(conn.execute("select current_database()").fetchone()[0])


def _refuse_other_warehouses(conn: psycopg.Connection, user: str) -> None:
    """A login user reads one warehouse: the channel groups are server-wide, so a member that could also connect to
    another warehouse database (one PUBLIC may not connect to) would read that warehouse's channel there too."""
    others = [name for name, in conn.execute(
        "select datname from pg_database d where datname <> current_database() and datallowconn"
        " and not has_database_privilege('public', d.oid, 'connect') and has_database_privilege(%s, d.oid, 'connect')"
        " order by datname", (user,))]
    if others:
        raise UserError(f"{user!r} can also connect to the warehouse database(s) {', '.join(others)} on this server, "
                        "where its channel groups would let it read too: grant a login user of its own here")


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
