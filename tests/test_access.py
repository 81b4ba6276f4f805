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

from creditplus import channels, warehouse
from creditplus.cli import main
from test_channels import assert_reads_only_its_channel
from test_publish import A, published_warehouse, query

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
        for name in made:
            conn.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(name)))


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


def test_portal_login_sees_only_its_enterprise(url, user, cli):
    name = user()
    assert cli("grant", "--channel", "enterprise_self", "--user", name)[0] == 0
    with login(url, name) as conn:
        detail = "select distinct uscc from enterprise_self.evaluation_detail"
        assert conn.execute(detail).fetchall() == []
        conn.execute("select set_config(%s, %s, false)", (channels.PORTAL_USCC_SETTING, A))
        assert conn.execute(detail).fetchall() == [(A,)]
        assert conn.execute("select count(*) from enterprise_self.evaluation_detail").fetchone() == (3,)
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


@pytest.mark.parametrize("table", ["publication.enterprise_evaluation", "publication.indicator_score"])
def test_each_publication_table_shows_the_portal_owner_only_the_verified_enterprise(url, table):
    """Each table's own policy, as the portal views' owner reads it: the view joins both tables, so a test of
    the view alone cannot see one table's policy gone."""
    with warehouse.connect(url) as conn, conn.transaction():
        assert conn.execute(f"select count(distinct uscc) from {table}").fetchone()[0] > 1  # others are there
        conn.execute(sql.SQL("set local role {}").format(sql.Identifier(channels.PORTAL_OWNER)))
        distinct = f"select distinct uscc from {table}"
        assert conn.execute(distinct).fetchall() == []  # no verified code: nothing
        conn.execute("select set_config(%s, %s, true)", (channels.PORTAL_USCC_SETTING, A))
        assert conn.execute(distinct).fetchall() == [(A,)]
