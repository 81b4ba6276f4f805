"""Channel views against the registry, the data dictionary, personal data, and every group
role's privileges via ``SET ROLE`` (test_access.py repeats the privilege checks with real logins)."""
from __future__ import annotations

import hashlib
import hmac
import re

import psycopg
import pytest
from psycopg import sql

from conftest import FIXTURES, portal_credential
from creditplus import channels, portal, warehouse
from test_publish import ENTERPRISES, GRADES, D1, D2, A, B, D, published_warehouse, query

RESIDENT_ID = re.compile(r"[1-9]\d{5}(18|19|20)\d{2}(0[1-9]|1[0-2])(0[1-9]|[12]\d|3[01])\d{3}[\dXx]")
PERSONAL_COLUMNS = {"legal_rep_id_no", "subject_id", "id_no", "subject_type"}
# A sample of what no reader may touch: every non-channel schema, and (added per role) other channels.
FORBIDDEN = ("raw.enterprises", "audit.publications", "audit.load_runs", "staging.stg_enterprises",
             "intermediate.int_population", "marts.fct_enterprise_evaluation", "publication.enterprise_evaluation",
             "publication.indicator_score", "publication.indicator_explanation",
             "publication.current_enterprise_evaluation",
             "publication.regulator_notifications", "publication.supply_chain_summary",
             "publication.unresolved_references")
# Schemas that are not PostgreSQL's own.
PROJECT_SCHEMAS = "select oid from pg_namespace where nspname !~ '^pg_' and nspname <> 'information_schema'"


@pytest.fixture(scope="module")
def url(make_database) -> str:
    return published_warehouse(make_database)


def relation(name: str) -> sql.Identifier:
    return sql.Identifier(*name.split("."))


def view_names(ch: channels.Channel) -> list[str]:
    return [f"{ch.name}.{v.name}" for v in ch.views]


def assert_reads_only_its_channel(conn: psycopg.Connection, ch: channels.Channel) -> None:
    """``conn`` (autocommit, acting as a member of ``ch.role``) reads its views and nothing else sampled."""
    for name in view_names(ch):
        conn.execute(sql.SQL("select * from {} limit 1").format(relation(name))).fetchall()
    others = [name for o in channels.CHANNELS if o is not ch for name in view_names(o)]
    for name in (*FORBIDDEN, *others):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(sql.SQL("select * from {} limit 1").format(relation(name))).fetchall()
    for create in (sql.SQL("create table {}.t (x int)").format(sql.Identifier(ch.name)),
                   "create table public.t (x int)", "create temp table t (x int)",
                   "create function pg_temp.f() returns int language sql as 'select 1'"):
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute(create)


def channel_rows(conn: psycopg.Connection, ch: channels.Channel, credential: str) -> dict[str, list[tuple]]:
    """Every row of ``ch``'s views as ``conn`` reads them in one transaction (enterprise_self: the portal
    entered ``credential``)."""
    with conn.transaction():
        if ch.name == "enterprise_self":
            portal.enter(conn, credential)
        return {name: sorted(conn.execute(sql.SQL("select * from {}").format(relation(name))).fetchall(), key=repr)
                for name in view_names(ch)}


def leak_probe(conn: psycopg.Connection, role: str) -> list[str]:
    """Make ``pg_temp.peek(text)`` (true, raising its argument as a notice) as the session user, executable by
    ``role`` (which may create no function itself), then act as ``role``; the list of notices seen."""
    seen: list[str] = []
    conn.add_notice_handler(lambda diag: seen.append(diag.message_primary))
    conn.execute("create function pg_temp.peek(text) returns boolean language plpgsql cost 0.0000001"
                 " as $$ begin raise notice '%', $1; return true; end $$")
    conn.execute(sql.SQL("grant execute on function pg_temp.peek(text) to {}").format(sql.Identifier(role)))
    conn.execute(sql.SQL("set role {}").format(sql.Identifier(role)))
    return seen


def test_every_view_has_the_registry_columns_in_order(url):
    actual: dict[str, list[tuple[str, str]]] = {}
    for schema, view, column, type_ in query(url, """
            select n.nspname, c.relname, a.attname, format_type(a.atttypid, a.atttypmod)
              from pg_class c join pg_namespace n on n.oid = c.relnamespace
              join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped
             where n.nspname = any(%s) order by n.nspname, c.relname, a.attnum""",
                                             ([ch.name for ch in channels.CHANNELS],)):
        actual.setdefault(f"{schema}.{view}", []).append((column, type_))
    expected = {f"{ch.name}.{v.name}": [(col, channels.COLUMNS[col][0]) for col in v.all_columns]
                for ch in channels.CHANNELS for v in ch.views}
    assert actual == expected  # no view missing, none extra, every column's name, order and type


def test_registry_mirrors_the_spec_table():
    spec = FIXTURES / "spec" / "publication-channels.md"
    rows = {}
    for line in spec.read_text(encoding="utf-8").splitlines():
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if len(cells) == 4 and cells[0].startswith("`") and "." in cells[0]:
            role = re.search(r"`(\w+)`\)?$", cells[1])
            rows[cells[0].strip("`")] = (role.group(1) if role else None, re.findall(r"`(\w+)`", cells[3]))
    for ch in channels.CHANNELS:
        for v in ch.views:
            if v.beyond_spec:  # an addition the issues ask for, where the spec table is silent
                assert f"{ch.name}.{v.name}" not in rows, f"{v.name} is in the spec now: drop beyond_spec"
                continue
            role, columns = rows.pop(f"{ch.name}.{v.name}")
            assert role == ch.role, v.name
            assert not set(v.added_columns) & set(columns), f"{v.name}: the spec lists an added column now"
            if v.name != "evaluation_detail":  # "the gov_share columns plus each indicator's points"
                assert list(v.columns) == columns, v.name
    assert rows == {}
    assert channels.BY_NAME["enterprise_self"].views[0].columns[:16] == channels.EVALUATION


def test_data_dictionary_is_generated_from_the_registry():
    text = channels.data_dictionary()
    assert channels.DICTIONARY_PATH.read_text(encoding="utf-8") == text, \
        "docs/channels.md is stale: run `python -m creditplus.channels`"
    for ch in channels.CHANNELS:
        for v in ch.views:
            assert f"### `{ch.name}.{v.name}`" in text
            assert all(f"| `{col}` |" in text for col in v.all_columns)
            for col in v.all_columns:  # in Chinese and in English
                _, zh, en = channels.COLUMNS[col]
                assert re.search(r"[\u4e00-\u9fff]", zh) and re.search(r"[A-Za-z]{3}", en), col


@pytest.mark.parametrize("ch", channels.CHANNELS, ids=lambda c: c.name)
def test_group_role_reads_its_own_views_only(url, ch):
    assert query(url, "select rolcanlogin, rolsuper, rolbypassrls from pg_roles where rolname = %s",
                 (ch.role,)) == [(False, False, False)]
    credential = portal_credential(url, A)
    with warehouse.connect(url, autocommit=True) as conn:
        expected = channel_rows(conn, ch, credential)  # as the owner
        assert all(expected.values()), expected
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(ch.role)))
        assert channel_rows(conn, ch, credential) == expected
        assert_reads_only_its_channel(conn, ch)


def test_each_role_may_use_its_own_schema_only(url):
    """Not even CONNECT: the group roles are server-wide, so CONNECT goes to each login user in its own database
    (test_access.py)."""
    privileges = f"""
        select (select array_agg(nspname::text order by nspname) from pg_namespace
                 where oid in ({PROJECT_SCHEMAS}) and has_schema_privilege(%(role)s, oid, 'usage')),
               (select bool_or(has_schema_privilege(%(role)s, oid, 'create')) from pg_namespace
                 where oid in ({PROJECT_SCHEMAS})),
               has_database_privilege(%(role)s, current_database(), 'connect'),
               has_database_privilege(%(role)s, current_database(), 'temporary'),
               (select rolcanlogin or rolbypassrls from pg_roles where rolname = %(role)s)"""
    for ch in channels.CHANNELS:
        assert query(url, privileges, {"role": ch.role}) == [([ch.name], False, False, False, False)], ch.role
    # the owner of enterprise_self's view reads publication, but nobody logs in as it nor connects with it
    assert query(url, privileges, {"role": channels.PORTAL_OWNER}) == [(["publication"], False, False, False, False)]


def test_public_has_no_privileges_on_channels_or_publication(url):
    """PUBLIC holds nothing, granted or by PostgreSQL's defaults (acldefault), on the database, the project's
    schemas, relations and functions, nor by a default privilege."""
    public = "exists (select from aclexplode(coalesce({acl}, acldefault({kind}, {owner}))) a where a.grantee = 0)"
    granted = query(url, f"""
        select 'database', datname::text from pg_database
         where datname = current_database() and {public.format(acl="datacl", kind="'d'", owner="datdba")}
        union all
        select 'schema', nspname::text from pg_namespace
         where oid in ({PROJECT_SCHEMAS}) and {public.format(acl="nspacl", kind="'n'", owner="nspowner")}
        union all
        select 'relation', oid::regclass::text from pg_class
         where relnamespace in ({PROJECT_SCHEMAS}) and {public.format(acl="relacl", kind="'r'", owner="relowner")}
        union all
        select 'function', oid::regprocedure::text from pg_proc
         where pronamespace in ({PROJECT_SCHEMAS}) and {public.format(acl="proacl", kind="'f'", owner="proowner")}
        union all
        select 'default', defaclobjtype::text from pg_default_acl
         where exists (select from aclexplode(defaclacl) a where a.grantee = 0)""")
    assert granted == []
    # each group role holds exactly SELECT on its own views, nothing on any other relation
    held = query(url, """
        select r.rolname, n.nspname || '.' || c.relname, p.privilege_type
          from pg_class c join pg_namespace n on n.oid = c.relnamespace
          cross join lateral aclexplode(c.relacl) p join pg_roles r on r.oid = p.grantee
         where r.rolname = any(%s)""", ([ch.role for ch in channels.CHANNELS],))
    assert sorted(held) == sorted((ch.role, name, "SELECT") for ch in channels.CHANNELS for name in view_names(ch))


def test_no_personal_data_reaches_any_channel(url):
    planted = {id_no for _, _, id_no, *_ in ENTERPRISES.values()}
    credentials = [portal_credential(url, uscc) for uscc in ENTERPRISES]
    names = {rep for _, rep, *_ in ENTERPRISES.values()}

    def scan(rel: str) -> tuple[set[str], set[str], set[str]]:
        """(columns, resident-ID-like values, legal representatives' names) found in ``rel``, read with the
        portal entered as each enterprise in turn; ``rel`` must have rows."""
        values: set[str] = set()
        with warehouse.connect(url, autocommit=True) as conn:
            for credential in credentials:
                with conn.transaction():
                    portal.enter(conn, credential)
                    cur = conn.execute(sql.SQL("select * from {}").format(relation(rel)))
                    columns = {d.name for d in cur.description}
                    values |= {str(v) for row in cur.fetchall() for v in row if v is not None}
        assert values, f"{rel} has no rows to scan"
        ids = {m.group(0) for v in values for m in RESIDENT_ID.finditer(v)}
        ids |= {p for p in planted if any(p in v for v in values)}
        return columns, ids, {v for v in values if v in names}

    assert scan("raw.enterprises")[1] >= planted  # the detector finds them where they are
    assert scan("raw.dishonest_debtors")[1] >= planted
    for ch in channels.CHANNELS:
        for name in view_names(ch):
            columns, ids, rep_names = scan(name)
            assert not columns & PERSONAL_COLUMNS, name
            assert ids == set(), name
            if name == "finance.xinyidai_recommendations":
                assert rep_names == {ENTERPRISES[u][1] for u, g in GRADES[D2].items() if g == "A"}
            else:
                assert "legal_rep_name" not in columns and rep_names == set(), name


def test_enterprise_portal_sees_only_the_enterprise_it_entered_in_this_transaction(url):
    credential_a, credential_b = portal_credential(url, A), portal_credential(url, B)
    detail = "select distinct uscc from enterprise_self.evaluation_detail"
    with warehouse.connect(url, autocommit=True) as conn:
        seen = leak_probe(conn, "enterprise_portal")
        assert conn.execute(detail).fetchall() == []  # nothing entered: nothing seen
        with conn.transaction():
            assert portal.enter(conn, credential_a) == A
            rows = conn.execute("select uscc, grade, previous_grade, indicator_code, points"
                                " from enterprise_self.evaluation_detail order by indicator_code").fetchall()
            assert [(u, g, p, code) for u, g, p, code, _ in rows] == [(A, "A", "A", c) for c in ("B1", "O5", "S3")]
        with conn.transaction():
            assert portal.enter(conn, credential_b) == B
            assert conn.execute(detail).fetchall() == [(B,)]
            # previous_grade: B's grade in the previous publication (D1), as gov_share shows it
            assert conn.execute("select distinct grade, previous_grade from enterprise_self.evaluation_detail"
                                ).fetchall() == [(GRADES[D2][B], GRADES[D1][B])] == [("A", "B")]
            # a filter of its own cannot widen the view, nor can a leaky function peek under it
            assert conn.execute("select count(*) from enterprise_self.evaluation_detail where uscc = %s",
                                (A,)).fetchone() == (0,)
            conn.execute("select * from enterprise_self.evaluation_detail where pg_temp.peek(uscc)").fetchall()
        assert set(seen) == {B}
        for forbidden in ("select * from publication.enterprise_evaluation",
                          "select * from publication.indicator_score"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(forbidden)


def test_the_portal_explains_the_points_of_the_enterprise_it_entered_only(url):
    """enterprise_self.indicator_explanations, under evaluation_detail's row-level security: a session entered for
    an enterprise sees that enterprise's rows only, which sum to its points per indicator and name the record of its
    cap (and the one an upheld objection excluded); the view's owner reads nothing without a verified session."""
    explained = ("select uscc, indicator_code, sum(points_moved)::int from enterprise_self.indicator_explanations"
                 " where indicator_code is not null group by 1, 2 order by 1, 2")
    scored = "select uscc, indicator_code, points from enterprise_self.evaluation_detail order by 1, 2"
    caps = ("select item, resource, record_key, excluded, excluded_by from enterprise_self.indicator_explanations"
            " where item_kind = 'cap' order by record_key")
    with warehouse.connect(url, autocommit=True) as conn:
        seen = leak_probe(conn, "enterprise_portal")
        assert conn.execute("select count(*) from enterprise_self.indicator_explanations").fetchone() == (0,)
        for uscc in (A, D):
            with conn.transaction():
                assert portal.enter(conn, portal_credential(url, uscc)) == uscc
                assert conn.execute("select distinct uscc from enterprise_self.indicator_explanations"
                                    ).fetchall() == [(uscc,)]
                assert conn.execute(explained).fetchall() == conn.execute(scored).fetchall() != []
                if uscc == D:  # graded E on D2, capped: its cap_reason names a record, the excluded one its decision
                    assert conn.execute("select distinct cap_reason from enterprise_self.evaluation_detail"
                                        ).fetchall() == [("serious_dishonesty",)]
                    assert conn.execute(caps).fetchall() == [
                        ("serious_dishonesty", "serious_dishonesty", f"SD-{D[-4:]}", False, None),
                        ("serious_dishonesty", "serious_dishonesty", f"SD-{D[-4:]}-OLD", True, f"objections/OBJ-{D[-4:]}")]
                else:
                    assert conn.execute(caps).fetchall() == []
                # a filter of its own cannot widen the view, nor can a leaky function peek under it
                conn.execute("select * from enterprise_self.indicator_explanations where pg_temp.peek(uscc)").fetchall()
        assert set(seen) == {A, D}
        # the view's owner (what the view reads with) outside a verified session, the code set by hand: nothing
        conn.execute("reset role")
        conn.execute(sql.SQL("set role {}").format(sql.Identifier(channels.PORTAL_OWNER)))
        conn.execute(f"set creditplus.portal_uscc = '{A}'")
        assert conn.execute("select count(*) from publication.indicator_explanation").fetchone() == (0,)
    assert query(url, "select count(*) from enterprise_self.indicator_explanations") == [(0,)]  # even as superuser
    assert query(url, "select count(distinct uscc) from publication.indicator_explanation x join audit.publications p"
                      " using (publication_id) where p.is_current") == [(len(GRADES[D2]),)]


def test_the_portal_login_cannot_forge_or_carry_over_a_verified_enterprise(url):
    """The enterprise_portal role itself sets what it likes: the code by hand, a proof it copied, the settings
    session-wide for the next request of a pooled connection, a session token edited to another code."""
    credential = portal_credential(url, A)
    detail = "select distinct uscc from enterprise_self.evaluation_detail"
    with warehouse.connect(url, autocommit=True) as conn:
        conn.execute("set role enterprise_portal")
        conn.execute(f"set creditplus.portal_uscc = '{A}'")
        assert conn.execute(detail).fetchall() == []
        with conn.transaction():
            token = conn.execute("select enterprise_self.sign_in(%s)", (credential,)).fetchone()[0]
            assert conn.execute("select enterprise_self.enter(%s)", (token,)).fetchone() == (A,)
            assert conn.execute(detail).fetchall() == [(A,)]
            settings = conn.execute("select current_setting('creditplus.portal_uscc'),"
                                    " current_setting('creditplus.portal_proof')").fetchone()
        assert conn.execute(detail).fetchall() == []  # the next request: gone with the transaction
        for scope_is_local in (False, True):
            with conn.transaction():
                conn.execute("select set_config('creditplus.portal_uscc', %s, %s),"
                             " set_config('creditplus.portal_proof', %s, %s)",
                             (settings[0], scope_is_local, settings[1], scope_is_local))
                assert conn.execute(detail).fetchall() == []  # a copied proof is for another transaction
        with conn.transaction():
            conn.execute("select set_config('creditplus.portal_uscc', %s, true)", (B,))
            conn.execute("select set_config('creditplus.portal_proof', %s, true)", (settings[1],))
            assert conn.execute(detail).fetchall() == []
        credential_id, _, until, signature = token.split(".")
        for forged in (f"{credential_id}.{B}.{until}.{signature}", f"{credential_id}.{A}.{int(until) + 3600}.{signature}",
                       f"{credential_id}.{A}.{until}.{'0' * 64}", "x.y.z.w", "", "....", credential):
            with conn.transaction():
                assert conn.execute("select enterprise_self.enter(%s)", (forged,)).fetchone() == (None,), forged
                assert conn.execute(detail).fetchall() == []
        for wrong in (credential[:-1] + ("A" if credential[-1] != "A" else "B"), credential.split(".")[0],
                      f"{credential_id}.{B}", "", None):
            assert conn.execute("select enterprise_self.sign_in(%s)", (wrong,)).fetchone() == (None,), wrong
        for secret in ("select * from audit.portal_credentials", "select * from audit.portal_signing_key",
                       "select audit.portal_signature('x')", "select audit.portal_proof('x')"):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(secret)


def test_a_revoked_or_expired_credential_ends_its_sessions_at_the_next_request(url):
    with warehouse.connect(url, autocommit=True) as conn:
        for end in ("revoked_at = now()", "expires_at = now() - interval '1 second'"):
            credential = portal_credential(url, A)
            token = conn.execute("select enterprise_self.sign_in(%s)", (credential,)).fetchone()[0]
            assert token is not None
            conn.execute(f"update audit.portal_credentials set {end} where credential_id = %s",
                         (credential.split(".")[0],))
            with conn.transaction():
                assert conn.execute("select enterprise_self.enter(%s)", (token,)).fetchone() == (None,)
            assert conn.execute("select enterprise_self.sign_in(%s)", (credential,)).fetchone() == (None,)


def test_the_session_signature_is_hmac_sha256_with_the_warehouse_key(url):
    """The SQL HMAC (PostgreSQL has no hmac() without pgcrypto) against Python's, on the stored padded keys."""
    with warehouse.connect(url) as conn:
        inner, outer = conn.execute("select inner_pad, outer_pad from audit.portal_signing_key").fetchone()
        key = bytes(b ^ 0x36 for b in inner)
        assert bytes(b ^ 0x5c for b in key) == bytes(outer) and len(key) == 64
        for message in ("session.abc", "统一社会信用代码", ""):
            ours = conn.execute("select audit.portal_signature(%s)", (message,)).fetchone()[0]
            assert ours == hmac.new(key, message.encode(), hashlib.sha256).hexdigest()


def test_a_leaky_function_cannot_see_past_the_xinyidai_filter(url):
    with warehouse.connect(url, autocommit=True) as conn:
        seen = leak_probe(conn, "finance_reader")
        conn.execute("select * from finance.xinyidai_recommendations where pg_temp.peek(legal_rep_name)").fetchall()
    assert sorted(seen) == sorted(ENTERPRISES[u][1] for u, g in GRADES[D2].items() if g == "A")


def test_setup_again_changes_nothing(url):
    """Setup is idempotent: run again on a published warehouse, it leaves every schema, relation, column,
    constraint, policy, function, privilege, role and membership, and the published rows, as they were."""
    roles = [ch.role for ch in channels.CHANNELS] + [channels.PORTAL_OWNER]
    catalog = {
        "schemas": f"select nspname, nspowner::regrole::text, nspacl::text from pg_namespace where oid in ({PROJECT_SCHEMAS})",
        "relations": f"""select oid::regclass::text, relkind, relowner::regrole::text, relacl::text, relrowsecurity,
                                reloptions::text, case relkind when 'v' then pg_get_viewdef(oid) end,
                                case relkind when 'i' then pg_get_indexdef(oid) end
                           from pg_class where relnamespace in ({PROJECT_SCHEMAS})""",
        "columns": f"""select a.attrelid::regclass::text, a.attnum, a.attname, format_type(a.atttypid, a.atttypmod),
                              a.attnotnull, a.attacl::text, pg_get_expr(d.adbin, d.adrelid)
                         from pg_attribute a join pg_class c on c.oid = a.attrelid
                         left join pg_attrdef d on d.adrelid = a.attrelid and d.adnum = a.attnum
                        where c.relnamespace in ({PROJECT_SCHEMAS}) and a.attnum > 0""",
        "constraints": f"select conrelid::regclass::text, conname, pg_get_constraintdef(oid) from pg_constraint"
                       f" where connamespace in ({PROJECT_SCHEMAS})",
        "policies": "select polrelid::regclass::text, polname, polcmd, polpermissive, polroles::regrole[]::text,"
                    " pg_get_expr(polqual, polrelid) from pg_policy",
        "functions": f"select oid::regprocedure::text, proowner::regrole::text, proacl::text, prosrc from pg_proc"
                     f" where pronamespace in ({PROJECT_SCHEMAS})",
        "defaults": "select defaclrole::regrole::text, defaclnamespace, defaclobjtype, defaclacl::text from pg_default_acl",
        "database": "select datacl::text from pg_database where datname = current_database()",
        "roles": "select r.rolname, r.rolcanlogin, r.rolsuper, r.rolinherit, r.rolcreaterole, r.rolbypassrls,"
                 " array(select m.member::regrole::text from pg_auth_members m where m.roleid = r.oid order by 1)"
                 " from pg_roles r where r.rolname = any(%(roles)s)",
        "rows": "select (select count(*) from audit.publications), (select count(*) from publication.enterprise_evaluation),"
                " (select count(*) from publication.indicator_score), (select count(*) from publication.warning_types),"
                " (select count(*) from publication.regulator_notifications),"
                " (select count(*) from publication.supply_chain_risk_warnings)",
    }

    def snapshot() -> dict[str, list[tuple]]:
        with warehouse.connect(url) as conn:
            return {name: sorted(conn.execute(q, {"roles": roles}).fetchall(), key=repr) for name, q in catalog.items()}

    before = snapshot()
    with warehouse.connect(url) as conn:
        warehouse.setup(conn)
    assert snapshot() == before
