"""Warehouse setup is idempotent; the embedded server starts on loopback TCP."""
import os
import subprocess
import sys

from creditplus import warehouse
from creditplus.resources import RESOURCES


def _catalogue(url):
    with warehouse.connect(url) as conn:
        return conn.execute(
            "select table_schema, table_name, column_name, data_type from information_schema.columns"
            " where table_schema in ('raw', 'audit') order by 1, 2, 3").fetchall()


def test_setup_twice_changes_nothing(warehouse_url):
    before = _catalogue(warehouse_url)
    with warehouse.connect(warehouse_url) as conn:
        warehouse.setup(conn)
    assert _catalogue(warehouse_url) == before
    tables = {(s, t) for s, t, _, _ in before}
    assert {("raw", r.name) for r in RESOURCES} <= tables
    assert {("audit", "load_runs"), ("audit", "quarantine"), ("audit", "watermarks")} <= tables


def test_raw_table_is_unique_on_key_and_updated_at(warehouse_url):
    with warehouse.connect(warehouse_url) as conn:
        insert = ("insert into raw.financials (uscc, year, updated_at, record, _load_id)"
                  " values ('X', '2025', '2026-01-01T00:00:00+08:00', '{}', 'l1') on conflict do nothing")
        assert conn.execute(insert).rowcount == 1
        assert conn.execute(insert.replace("+08:00", "+08:00")).rowcount == 0
        same_instant = insert.replace("2026-01-01T00:00:00+08:00", "2025-12-31T16:00:00Z")
        assert conn.execute(same_instant).rowcount == 0


def test_embedded_server_listens_on_loopback_and_outlives_its_starter(tmp_path):
    env = {**os.environ, "CREDITPLUS_HOME": str(tmp_path)}
    env.pop("CREDITPLUS_WAREHOUSE_URL", None)
    code = "from creditplus import warehouse; print(warehouse.url())"
    try:
        url = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                             text=True).stdout.strip().splitlines()[-1]
        assert url.startswith("postgresql://postgres@127.0.0.1:")
        with warehouse.connect(url) as conn:  # the starter process has exited
            warehouse.setup(conn)
            assert conn.execute("select current_database()").fetchone()[0] == warehouse.EMBEDDED_DB
        again = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True,
                               text=True).stdout.strip().splitlines()[-1]
        assert again == url
    finally:
        subprocess.run([sys.executable, "-c", "from creditplus import warehouse; warehouse.stop_embedded()"],
                       env=env, check=True)
