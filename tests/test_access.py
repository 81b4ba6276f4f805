"""``creditplus access grant|revoke`` with real login users (cluster-wide: unique names, dropped at the end)."""
from __future__ import annotations

import base64
import hashlib
import hmac
import io
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from creditplus import channels, portal, warehouse
from creditplus.cli import main
from conftest import database_name, portal_credential
from test_channels import assert_reads_only_its_channel
from test_publish import A, B, published_warehouse, query

CREDITPLUS = Path(sys.executable).with_name("creditplus")


@pytest.fixture(scope="module")
def url(make_database) -> str:
    return published_warehouse(make_database)


@pytest.fixture
def user(url):
    """Factory of unique role names; every role made under them is dropped afterwards."""
    made: list[str] = []

    def make() -> str:
        made.append(f"cp_access_{uuid.uuid4().hex[:12]}")
        return made[-1]

    yield make
    with warehouse.connect(url, autocommit=True) as conn:
        for name in made:  # its CONNECT on databases (shared objects) goes with drop owned
            if conn.execute("select to_regrole(%s)", (name,)).fetchone()[0]:
                conn.execute(sql.SQL("drop owned by {0}; drop role {0}").format(sql.Identifier(name)))


@pytest.fixture
def cli(url, monkeypatch, capsys):
    """Run ``creditplus access ...`` in-process against the database; (exit status, stdout, stderr)."""
    monkeypatch.setenv("CREDITPLUS_WAREHOUSE_URL", url)

    def run(*argv: str, password: str | None = "初始 password 1") -> tuple[int, str, str]:
        if password is None:  # and nothing piped
            monkeypatch.delenv("CREDITPLUS_ACCESS_PASSWORD", raising=False)
            monkeypatch.setattr(sys, "stdin", io.StringIO(""))
        else:
            monkeypatch.setenv("CREDITPLUS_ACCESS_PASSWORD", password)
        status = main(["access", *argv])
        out, err = capsys.readouterr()
        return status, out, err

    return run


def password_matches(url: str, name: str, password: str) -> bool:
    """Whether the role's stored SCRAM verifier was made from ``password``."""
    (stored,), = query(url, "select rolpassword from pg_authid where rolname = %s", (name,))
    iterations, salt, stored_key, _ = re.fullmatch(r"SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)", stored).groups()
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), base64.b64decode(salt), int(iterations))
    client_key = hmac.new(salted, b"Client Key", "sha256").digest()
    return base64.b64encode(hashlib.sha256(client_key).digest()).decode() == stored_key


def login(url: str, name: str) -> psycopg.Connection:
    return psycopg.connect(url, user=name, autocommit=True)


@pytest.mark.parametrize("ch", channels.CHANNELS, ids=lambda c: c.name)
def test_granted_login_user_reads_its_channel_only(url, user, cli, ch):
    name = user()
    status, out, _ = cli("grant", "--channel", ch.name, "--user", name, password="s3cret-渠道")
    assert status == 0 and out == f"created login user {name}; member of {ch.role} (channel {ch.name})\n"
    assert query(url, "select rolcanlogin, rolsuper, rolcreaterole, rolinherit from pg_roles where rolname = %s",
                 (name,)) == [(True, False, False, True)]
    assert password_matches(url, name, "s3cret-渠道") and not password_matches(url, name, "other")
    with login(url, name) as conn:
        assert conn.execute("select session_user").fetchone() == (name,)
        assert_reads_only_its_channel(conn, ch)


def test_portal_login_sees_only_the_enterprise_it_entered(url, user, cli):
    name = user()
    assert cli("grant", "--channel", "enterprise_self", "--user", name)[0] == 0
    credential = portal_credential(url, A)
    with login(url, name) as conn:
        detail = "select distinct uscc from enterprise_self.evaluation_detail"
        assert conn.execute(detail).fetchall() == []
        with conn.transaction():
            assert portal.enter(conn, credential) == A
            assert conn.execute(detail).fetchall() == [(A,)]
            assert conn.execute("select count(*) from enterprise_self.evaluation_detail").fetchone() == (3,)
        with pytest.raises(ValueError, match="inside a transaction"):  # autocommit: it would end at once
            portal.enter(conn, credential)
        for forbidden in ("set role creditplus_portal_owner", "set role gov_share_reader",
                          "select * from publication.enterprise_evaluation", "select * from gov_share.enterprise_evaluation"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)


def test_grant_again_updates_and_revoke_removes_the_membership(url, user, cli):
    name = user()
    assert cli("grant", "--channel", "finance", "--user", name)[0] == 0
    status, out, _ = cli("grant", "--channel", "finance", "--user", name, password="新的 password 2")
    assert (status, out) == (0, f"updated login user {name} with a new password; member of finance_reader (channel finance)\n")
    assert password_matches(url, name, "新的 password 2")
    status, out, _ = cli("grant", "--channel", "association", "--user", name, password=None)  # keeps its password
    assert (status, out) == (0, f"updated login user {name}; member of association_reader (channel association)\n")
    assert password_matches(url, name, "新的 password 2")
    status, out, _ = cli("revoke", "--channel", "finance", "--user", name)
    assert (status, out) == (0, f"revoked: {name} is no longer a member of finance_reader (channel finance)\n")
    with login(url, name) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("select * from finance.enterprise_grades")
        conn.execute("select * from association.enterprise_grades")
    status, out, _ = cli("revoke", "--channel", "finance", "--user", name)
    assert (status, out) == (0, f"{name} was not a member of finance_reader (channel finance); nothing changed\n")
    status, _, err = cli("revoke", "--channel", "finance", "--user", user())
    assert status == 2 and "there is no user" in err


@pytest.mark.parametrize("argv, message", [
    (("--channel", "marts", "--user", "bank_user"), "unknown channel 'marts'; channels: gov_share, finance"),
    (("--channel", "gov_share", "--user", "Bank"), "unsafe user name 'Bank'"),
    (("--channel", "gov_share", "--user", "x; drop role postgres"), "unsafe user name"),
    (("--channel", "gov_share", "--user", "1bank"), "unsafe user name"),
    (("--channel", "gov_share", "--user", "b" * 64), "unsafe user name"),
    (("--channel", "gov_share", "--user", ""), "unsafe user name"),
    (("--channel", "gov_share", "--user", "postgres"), "reserved or built-in role name"),
    (("--channel", "gov_share", "--user", "pg_read_all_data"), "reserved or built-in role name"),
    (("--channel", "gov_share", "--user", "finance_reader"), "reserved or built-in role name"),
    (("--channel", "gov_share", "--user", "creditplus_portal_owner"), "reserved or built-in role name"),
])
@pytest.mark.parametrize("action", ["grant", "revoke"])
def test_unknown_channel_or_unsafe_name_is_a_clear_error(url, cli, action, argv, message):
    before = query(url, "select count(*) from pg_roles")
    status, out, err = cli(action, *argv)
    assert (status, out) == (2, "")
    assert err.startswith("creditplus: error: ") and message in err and err.count("\n") == 1
    assert query(url, "select count(*) from pg_roles") == before


@pytest.mark.parametrize("make, message", [
    ("create role {0} login superuser", "is a privileged role"),
    ("create role {0} login createrole", "is a privileged role"),
    ("create role {0} login bypassrls", "is a privileged role"),
    ("create role {0} login; grant pg_read_all_data to {0}", "is a privileged role"),
    ("create role {0} nologin; create role {1} login; grant {0} to {1}", "is a group role with members"),
])
def test_an_existing_privileged_or_group_role_is_refused(url, user, cli, make, message):
    name, other = user(), user()
    with warehouse.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL(make).format(sql.Identifier(name), sql.Identifier(other)))
    status, _, err = cli("grant", "--channel", "public_query", "--user", name)
    assert status == 2 and message in err
    assert query(url, "select rolpassword, exists (select from pg_auth_members where member = a.oid"
                      " and roleid = 'public_reader'::regrole) from pg_authid a where rolname = %s",
                 (name,)) == [(None, False)]


def test_password_comes_from_piped_stdin_and_never_from_argv(url, user):
    name = user()
    env = {k: v for k, v in os.environ.items() if k != "CREDITPLUS_ACCESS_PASSWORD"}
    env["CREDITPLUS_WAREHOUSE_URL"] = url
    command = [str(CREDITPLUS), "access", "grant", "--channel", "public_query", "--user", name]
    done = subprocess.run(command, input="", env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "needs a password: pipe it on stdin or set CREDITPLUS_ACCESS_PASSWORD" in done.stderr
    done = subprocess.run(command, input="piped secret\n", env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert password_matches(url, name, "piped secret")
    done = subprocess.run([*command, "--password", "x"], input="", env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unrecognized arguments: --password" in done.stderr


@pytest.mark.parametrize("table", ["publication.enterprise_evaluation", "publication.indicator_score",
                                   "publication.indicator_explanation", "publication.objection_sla"])
def test_each_publication_table_shows_the_portal_owner_only_the_verified_enterprise(url, table):
    """Each table's own policy, as the portal views' owner reads it: evaluation_detail joins two tables, so a test
    of the view alone cannot see one table's policy gone."""
    credential = portal_credential(url, A)
    distinct = f"select distinct uscc from {table}"
    with warehouse.connect(url) as conn, conn.transaction():
        assert conn.execute(f"select count(distinct uscc) from {table}").fetchone()[0] > 1  # others are there
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(channels.PORTAL_OWNER)))
        assert conn.execute(distinct).fetchall() == []  # no verified code: nothing
        conn.execute("select set_config('creditplus.portal_uscc', %s, true)", (A,))
        assert conn.execute(distinct).fetchall() == []  # a code set by hand: nothing
    with warehouse.connect(url) as conn, conn.transaction():
        portal.enter(conn, credential)
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(channels.PORTAL_OWNER)))
        assert conn.execute(distinct).fetchall() == [(A,)]


def connects(url: str, name: str) -> bool:
    try:
        login(url, name).close()
    except psycopg.OperationalError as exc:
        assert "permission denied for database" in str(exc)
        return False
    return True


@pytest.fixture(scope="module")
def other_warehouse(make_database) -> str:
    """A second warehouse on the same server, set up (its channels, views and grants) but never published."""
    other = make_database()
    with warehouse.connect(other) as conn:
        warehouse.setup(conn)
    return other


def test_a_grant_reaches_its_own_warehouse_only(url, other_warehouse, user, cli, monkeypatch):
    name = user()
    assert cli("grant", "--channel", "finance", "--user", name)[0] == 0
    assert connects(url, name) and not connects(other_warehouse, name)
    # granted in the other warehouse too, its finance membership would read that one's finance views: refused
    monkeypatch.setenv("CREDITPLUS_WAREHOUSE_URL", other_warehouse)
    status, out, err = cli("grant", "--channel", "public_query", "--user", name, password=None)
    assert (status, out) == (2, "") and err.count("\n") == 1
    assert f"{name!r} can also connect to the warehouse database(s) {database_name(url)} on this server" in err
    assert not connects(other_warehouse, name)
    assert query(url, "select count(*) from pg_auth_members where member = to_regrole(%s)", (name,)) == [(1,)]
    monkeypatch.setenv("CREDITPLUS_WAREHOUSE_URL", url)
    assert cli("revoke", "--channel", "association", "--user", name)[1].endswith("nothing changed\n")
    assert connects(url, name)  # a channel it was not in takes nothing
    status, out, _ = cli("revoke", "--channel", "finance", "--user", name)
    assert out.endswith("; in no channel any more, it can no longer connect\n")
    assert not connects(url, name)


def test_setup_moves_a_warehouse_off_group_connect_and_names_who_must_be_granted_again(
        other_warehouse, user, monkeypatch, capsys):
    """A warehouse set up before access was per database let every member of a group connect."""
    legacy, own = user(), user()
    with warehouse.connect(other_warehouse, autocommit=True) as conn:
        database = sql.Identifier(database_name(other_warehouse))
        conn.execute(sql.SQL("grant connect on database {} to gov_share_reader").format(database))
        for name in (legacy, own):
            conn.execute(sql.SQL("create role {} login; grant gov_share_reader to {}").format(
                sql.Identifier(name), sql.Identifier(name)))
        conn.execute(sql.SQL("grant connect on database {} to {}").format(database, sql.Identifier(own)))
    assert connects(other_warehouse, legacy)
    monkeypatch.setenv("CREDITPLUS_WAREHOUSE_URL", other_warehouse)
    assert main(["setup"]) == 0
    notice, = capsys.readouterr().out.splitlines()[1:]
    assert notice.startswith("channel access is now per database: ") and notice.endswith(
        " no longer connect here through their channel group; grant each again in its own warehouse with "
        "`creditplus access grant`")
    assert legacy in notice and own not in notice
    assert not connects(other_warehouse, legacy) and connects(other_warehouse, own)
    assert main(["setup"]) == 0 and len(capsys.readouterr().out.splitlines()) == 1  # said once


def test_portal_credentials_are_shown_once_stored_hashed_listed_and_revoked(url, monkeypatch, capsys):
    monkeypatch.setenv("CREDITPLUS_WAREHOUSE_URL", url)

    def run(*argv: str) -> tuple[int, list[str], str]:
        status = main(["portal", *argv])
        out, err = capsys.readouterr()
        return status, out.splitlines(), err

    status, (said, credential), _ = run("credential", "--uscc", A, "--days", "30")
    credential_id, secret = credential.split(".")
    assert status == 0 and said.startswith(f"credential {credential_id} for {A}, valid until ") and len(secret) >= 32
    stored = query(url, "select t::text from audit.portal_credentials t where credential_id = %s", (credential_id,))
    assert len(stored) == 1 and secret not in stored[0][0]
    status, listed, _ = run("list", "--uscc", A)
    mine = [line for line in listed if line.startswith(credential_id)]
    assert status == 0 and len(mine) == 1 and mine[0].endswith(" valid") and not any(secret in line for line in listed)
    with warehouse.connect(url) as conn:
        assert portal.enter(conn, credential) == A
    assert run("revoke", "--credential", credential_id)[:2] == (0, [f"revoked 1 credential(s): {credential_id}"])
    with warehouse.connect(url) as conn:
        assert portal.enter(conn, credential) is None
    assert [line for line in run("list", "--uscc", A)[1] if line.startswith(credential_id)][0].endswith(" revoked")
    of_b = {run("credential", "--uscc", B)[1][1] for _ in range(2)}
    status, (said,), _ = run("revoke", "--uscc", B)
    assert status == 0 and {c.split(".")[0] for c in of_b} <= set(said.partition(": ")[2].split(", "))
    with warehouse.connect(url) as conn:
        assert {portal.enter(conn, c) for c in of_b} == {None}
    for argv, message in ((("revoke", "--credential", credential_id), f"no valid credential with id {credential_id!r}"),
                          (("credential", "--uscc", "91230000MA00000000"), "is not an enterprise this warehouse has graded"),
                          (("credential", "--uscc", A, "--days", "0"), "a credential lasts 1 to 366 days")):
        status, out, err = run(*argv)
        assert (status, out) == (2, []) and message in err and err.count("\n") == 1, err
