"""``creditplus airflow up | status | down`` without starting Airflow: what a user can get wrong is one line
naming what to fix, with a non-zero exit (the services themselves run in tests/test_scheduler.py)."""
from __future__ import annotations

import os
import socket
import stat
import subprocess


from conftest import CLI
from creditplus import airflow_services, config, deployment
from creditplus.warehouse import free_port



def up(env_extra: dict[str, str], tmp_path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CREDITPLUS_HOME": str(tmp_path), **env_extra}
    return subprocess.run([CLI, "airflow", "up"], env=env, capture_output=True, text=True, timeout=120)


def one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1, result.stderr
    return result.stderr.removeprefix("creditplus: error: ").strip()


def test_a_missing_redis_is_one_line(warehouse_url, tmp_path):
    port = free_port()
    error = one_line_error(up({"CREDITPLUS_REDIS_URL": f"redis://127.0.0.1:{port}/0"}, tmp_path))
    assert error == (f"no Redis answers at redis://127.0.0.1:{port}/0; start it, or unset CREDITPLUS_REDIS_URL "
                     "to run the LocalExecutor")


def test_a_busy_port_is_one_line(warehouse_url, tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        error = one_line_error(up({"CREDITPLUS_REDIS_URL": "redis://127.0.0.1:6379/14",
                                   "CREDITPLUS_AIRFLOW_PORT": str(port)}, tmp_path))
    assert error == (f"port {port} on 127.0.0.1 is in use by another program; stop it or set "
                     "CREDITPLUS_AIRFLOW_PORT to a free port")


def test_an_unreachable_metadata_database_is_one_line(tmp_path):
    port = free_port()
    error = one_line_error(up({"CREDITPLUS_REDIS_URL": "redis://127.0.0.1:6379/14",
                               "CREDITPLUS_AIRFLOW_PORT": str(free_port()),
                               "CREDITPLUS_WAREHOUSE_URL": f"postgresql://ops:s3cret@127.0.0.1:{port}/creditplus"},
                              tmp_path))
    assert error.startswith("cannot reach the PostgreSQL server for Airflow's metadata database at "
                            f"postgresql://ops:***@127.0.0.1:{port}/postgres (")
    assert error.endswith("); start it or set CREDITPLUS_WAREHOUSE_URL") and "s3cret" not in error


def test_without_redis_it_says_so_and_runs_the_local_executor(monkeypatch):
    monkeypatch.delenv("CREDITPLUS_REDIS_URL", raising=False)
    monkeypatch.setattr(config, "DEFAULT_REDIS_URL", f"redis://127.0.0.1:{free_port()}/0")
    executor, _, notice = airflow_services.choose_broker()
    assert executor == "LocalExecutor"
    assert notice.startswith(f"no Redis answers at {config.DEFAULT_REDIS_URL}: running the LocalExecutor")
    assert [s.name for s in deployment.services(executor)] == ["apiserver", "scheduler", "dag-processor", "triggerer"]
    monkeypatch.setattr(config, "DEFAULT_REDIS_URL", "redis://127.0.0.1:6379/0")  # the machine's Redis
    assert airflow_services.choose_broker() == ("CeleryExecutor", "redis://127.0.0.1:6379/0", None)


def test_status_and_down_when_nothing_runs(tmp_path):
    env = {**os.environ, "CREDITPLUS_HOME": str(tmp_path)}
    status = subprocess.run([CLI, "airflow", "status"], env=env, capture_output=True, text=True)
    assert (status.returncode, status.stdout) == (3, "airflow: not running (`creditplus airflow up` starts it)\n")
    down = subprocess.run([CLI, "airflow", "down"], env=env, capture_output=True, text=True)
    assert (down.returncode, down.stdout) == (0, "airflow: nothing was running\n")


def test_the_metadata_database_sits_beside_the_warehouse():
    assert airflow_services.metadata_url("postgresql://ops:pw@db.example:6432/creditplus") == \
        "postgresql+psycopg2://ops:pw@db.example:6432/creditplus_airflow"


def test_generated_secrets_are_readable_by_their_owner_only(monkeypatch, tmp_path):
    monkeypatch.setenv("CREDITPLUS_HOME", str(tmp_path))
    first = airflow_services.native_endpoints("postgresql://postgres@127.0.0.1:5432/x", "CeleryExecutor", "redis://r")
    again = airflow_services.native_endpoints("postgresql://postgres@127.0.0.1:5432/x", "CeleryExecutor", "redis://r")
    assert (first.fernet_key, first.jwt_secret) == (again.fernet_key, again.jwt_secret)  # kept across restarts
    assert len(first.jwt_secret) >= 64
    for name in ("fernet_key", "jwt_secret"):
        mode = (airflow_services.services_dir() / name).stat().st_mode
        assert stat.S_IMODE(mode) == 0o600, name
