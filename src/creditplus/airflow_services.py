"""``creditplus airflow up | status | down``: Airflow's services as production runs them, natively.

The services, their settings and the initialisation are ``creditplus.deployment``'s (the same that
docker-compose.yml is generated from); here they get this machine's addresses: Airflow's metadata
database is ``<warehouse database>_airflow`` on the warehouse's PostgreSQL server (the embedded one by
default), Celery's broker is Redis (``CREDITPLUS_REDIS_URL``; the default only where one answers, else
the LocalExecutor). Each service runs in its own session (``setsid``) with its pid in
``<home>/airflow/services/<name>.pid`` and its output in ``<name>.log`` beside it; ``down`` stops exactly
those sessions. Secrets made here (fernet key, JWT secret, admin password) stay in files only the
owner can read, never in arguments or output.
"""
from __future__ import annotations

import json
import os
import secrets
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import psycopg
from psycopg import sql

from creditplus import airflow_env, config, deployment, warehouse
from creditplus.errors import UserError

START_TIMEOUT_S = 180  # two cores: every component imports Airflow (and the DAG processor Cosmos) at once
STOP_TIMEOUT_S = 45    # the triggerer takes ~12 s; a worker waits for its running tasks
DEFAULT_LOG_PORTS = (8793, 8794)  # Airflow's own defaults for the worker's and the triggerer's log servers


def services_dir() -> Path:
    path = airflow_env.airflow_home() / "services"
    path.mkdir(parents=True, exist_ok=True)
    return path


def _state_file() -> Path:
    return services_dir() / "deployment.json"


# ---------------------------------------------------------------- this machine's endpoints
def metadata_url(warehouse_url: str) -> str:
    """Airflow's metadata database: ``<warehouse db>_airflow`` on the warehouse's server (SQLAlchemy URL)."""
    parts = urlsplit(warehouse_url)
    database = parts.path.lstrip("/") or "postgres"
    return urlunsplit(("postgresql+psycopg2", parts.netloc, f"/{database}_airflow", "", ""))


def _create_metadata_database(warehouse_url: str) -> None:
    parts = urlsplit(warehouse_url)
    name = urlsplit(metadata_url(warehouse_url)).path.lstrip("/")
    server = urlunsplit((parts.scheme, parts.netloc, "/postgres", parts.query, ""))
    try:
        with psycopg.connect(server, autocommit=True, connect_timeout=5) as conn:
            if not conn.execute("select 1 from pg_database where datname = %s", (name,)).fetchone():
                conn.execute(sql.SQL("create database {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"cannot reach the PostgreSQL server for Airflow's metadata database at "
                        f"{warehouse.redact(server)} ({reason}); start it or set CREDITPLUS_WAREHOUSE_URL") from None


def _redis_answers(url: str) -> bool:
    parts = urlsplit(url)
    try:
        with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379), timeout=2) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith((b"+PONG", b"-NOAUTH"))
    except OSError:
        return False


def choose_broker() -> tuple[str, str, str | None]:
    """(executor, broker URL, notice): Celery on the configured Redis, on the default one where it answers,
    else the LocalExecutor with a one-line notice. A configured Redis that does not answer is an error."""
    configured = config.redis_url()
    if configured:
        if not _redis_answers(configured):
            raise UserError(f"no Redis answers at {warehouse.redact(configured)}; start it, or unset "
                            "CREDITPLUS_REDIS_URL to run the LocalExecutor")
        return "CeleryExecutor", configured, None
    if _redis_answers(config.DEFAULT_REDIS_URL):
        return "CeleryExecutor", config.DEFAULT_REDIS_URL, None
    return "LocalExecutor", config.DEFAULT_REDIS_URL, (
        f"no Redis answers at {config.DEFAULT_REDIS_URL}: running the LocalExecutor "
        "(set CREDITPLUS_REDIS_URL to a Redis for the CeleryExecutor)")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _ports() -> dict[str, int]:
    worker, triggerer = DEFAULT_LOG_PORTS
    return {
        "CREDITPLUS_AIRFLOW_PORT": config.airflow_port(),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": int(os.environ.get("AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT") or worker),
        "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": int(os.environ.get("AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT") or triggerer),
    }


def _secret(name: str, make) -> str:
    """A generated secret kept in the services folder (owner-only), the same on every start."""
    path = services_dir() / name
    if not path.exists():
        airflow_env.create_private(path, make())
    return path.read_text().strip()


def native_endpoints(warehouse_url: str, executor: str, broker_url: str) -> deployment.Endpoints:
    from cryptography.fernet import Fernet

    ports = _ports()
    base_url = f"http://127.0.0.1:{ports['CREDITPLUS_AIRFLOW_PORT']}"
    return deployment.Endpoints(
        executor=executor,
        airflow_home=str(airflow_env.airflow_home()),
        creditplus_home=str(config.home()),
        dags_folder=str(config.DAGS_DIR),
        metadata_url=metadata_url(warehouse_url),
        broker_url=broker_url,
        api_host="127.0.0.1",
        api_port=ports["CREDITPLUS_AIRFLOW_PORT"],
        api_base_url=base_url,
        worker_log_port=ports["AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT"],
        triggerer_log_port=ports["AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT"],
        fernet_key=_secret("fernet_key", lambda: Fernet.generate_key().decode()),
        jwt_secret=_secret("jwt_secret", lambda: secrets.token_urlsafe(64)),
        warehouse_url=warehouse_url,
        platform_url=config.platform_url(),
        platform_token=config.platform_token() or "",
        alert_email=config.alert_email(),
        smtp_url=config.smtp_url(),
        platform_pool_slots=str(config.platform_pool_slots()),
    )


def service_env(endpoints: deployment.Endpoints) -> dict[str, str]:
    """The services' environment: the deployment's settings, then the operator's ``CREDITPLUS_AIRFLOW_SETTINGS``."""
    try:
        extra = config.airflow_settings()
    except ValueError as exc:
        raise UserError(str(exc)) from None
    return {**os.environ, **deployment.airflow_settings(endpoints), **extra}


# ---------------------------------------------------------------- processes
def _pid_file(name: str) -> Path:
    return services_dir() / f"{name}.pid"


def log_file(name: str) -> Path:
    return services_dir() / f"{name}.log"


def _stat(pid: int | str) -> list[str] | None:
    """The fields of ``/proc/<pid>/stat`` after the command name (state, ppid, pgrp, session, ...) while the
    process is live, not a zombie (a process just stopped may linger as one); else None."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return fields if fields[0] not in ("Z", "X") else None


def _alive(pid: int) -> bool:
    return _stat(pid) is not None


def _session_members(sid: int) -> list[int]:
    """Every live process of session ``sid`` (task processes run in process groups of their own)."""
    return [int(entry.name) for entry in Path("/proc").iterdir()
            if entry.name.isdigit() and (fields := _stat(entry.name)) and int(fields[3]) == sid]


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


@dataclass
class Running:
    name: str
    pid: int | None
    alive: bool


def running_services() -> list[Running]:
    """Every service with a pid file, in definition order."""
    found = []
    for service in deployment.SERVICES:
        path = _pid_file(service.name)
        if path.exists():
            pid = int(path.read_text())
            found.append(Running(service.name, pid, _alive(pid)))
    return found


def state() -> dict | None:
    """What the last ``up`` started: executor, API URL, ports (None when nothing was started)."""
    path = _state_file()
    return json.loads(path.read_text()) if path.exists() else None


def _start(service: deployment.Service, env: dict[str, str]) -> int:
    with log_file(service.name).open("ab") as out:
        proc = subprocess.Popen([airflow_env.venv_bin("airflow"), *service.args], env=env, stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, cwd=config.PROJECT_ROOT,
                                start_new_session=True)
    _pid_file(service.name).write_text(str(proc.pid))
    return proc.pid


def _last_line(name: str) -> str:
    try:
        lines = [line for line in log_file(name).read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "no output"
    return lines[-1][:300] if lines else "no output"


# ---------------------------------------------------------------- up
def up(*, quiet: bool = False) -> dict:
    """Start every service not already running; return the deployment's state once the API answers and
    the scheduler, DAG processor and triggerer report healthy (and, with Celery, the worker answers)."""
    from creditplus import nightly

    say = (lambda *_: None) if quiet else (lambda text: print(text, flush=True))
    current = {r.name: r for r in running_services()}
    previous = state()
    if previous and current and all(r.alive for r in current.values()) and \
            {s.name for s in deployment.services(previous["executor"])} <= set(current):
        return previous
    warehouse_url = warehouse.url()
    executor, broker, notice = choose_broker()
    if notice:
        say(f"airflow: {notice}")
    to_start = [s for s in deployment.services(executor) if not (s.name in current and current[s.name].alive)]
    busy = {name: port for name, port in _ports().items() if not _port_free(port)}
    if busy and not current:  # a restart of some services keeps the ports of those still running
        name, port = next(iter(busy.items()))
        raise UserError(f"port {port} on 127.0.0.1 is in use by another program; stop it or set {name} to a "
                        "free port")
    _create_metadata_database(warehouse_url)
    nightly.ensure_manifest()
    endpoints = native_endpoints(warehouse_url, executor, broker)
    env = service_env(endpoints)
    say(f"airflow: preparing the metadata database {warehouse.redact(endpoints.metadata_url)}")
    _init(env)
    started_at = time.time()
    for service in to_start:
        _start(service, env)
    info = {"executor": executor, "api_url": endpoints.api_base_url, "warehouse": warehouse.redact(warehouse_url),
            "metadata_url": warehouse.redact(endpoints.metadata_url),
            "broker_url": broker if executor == "CeleryExecutor" else None,
            "password_file": env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"],
            "logs": str(services_dir()), "task_logs": str(airflow_env.airflow_home() / "logs")}
    _state_file().write_text(json.dumps(info, indent=2))
    say(f"airflow: starting {', '.join(s.name for s in to_start)} ({executor})")
    try:
        _wait_healthy(info, env, started_at)
    except UserError:
        down(quiet=True)
        raise
    return info


def _init(env: dict[str, str]) -> None:
    proc = subprocess.run([airflow_env.venv_bin("creditplus"), "airflow", "init"], env=env, capture_output=True,
                          text=True)
    if proc.returncode != 0:
        raise UserError((proc.stderr.strip().splitlines() or ["airflow init failed"])[-1].removeprefix(
            "creditplus: error: "))


def _wait_healthy(info: dict, env: dict[str, str], started_at: float) -> None:
    expected = {"metadatabase", "scheduler", "triggerer", "dag_processor"}
    worker_ok = info["executor"] != "CeleryExecutor"
    deadline = started_at + START_TIMEOUT_S
    while time.time() < deadline:
        dead = [r.name for r in running_services() if not r.alive]
        if dead:
            raise UserError(f"airflow {dead[0]} stopped while starting: {_last_line(dead[0])} "
                            f"(log: {log_file(dead[0])})")
        healthy = api_health(info["api_url"])
        if not worker_ok and healthy:
            worker_ok = _worker_answers(env)
        if expected <= healthy and worker_ok:
            return
        time.sleep(1)
    raise UserError(f"Airflow's services did not all become healthy within {START_TIMEOUT_S} s; see the logs in "
                    f"{services_dir()}")


def api_health(api_url: str) -> set[str]:
    """The components Airflow's health endpoint reports healthy (empty while the API does not answer)."""
    try:
        response = httpx.get(f"{api_url}/api/v2/monitor/health", timeout=5)
        body = response.json()
    except (httpx.HTTPError, ValueError):
        return set()
    return {name for name, part in body.items() if isinstance(part, dict) and part.get("status") == "healthy"}


def _worker_answers(env: dict[str, str]) -> bool:
    worker = next(s for s in deployment.SERVICES if s.name == "worker")
    argv = [airflow_env.venv_bin(worker.healthcheck[0]), *worker.healthcheck[1:]]
    return subprocess.run(argv, env=env, capture_output=True).returncode == 0


# ---------------------------------------------------------------- down
def stop(name: str, *, timeout: float = STOP_TIMEOUT_S) -> None:
    """Stop one service: SIGTERM to its session leader, then whatever is left in its session."""
    path = _pid_file(name)
    if not path.exists():
        return
    sid = int(path.read_text())
    if _alive(sid):
        os.kill(sid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while _alive(sid) and time.monotonic() < deadline:
        time.sleep(0.2)
    _kill_all(_session_members(sid))
    path.unlink(missing_ok=True)


def kill(name: str) -> int:
    """SIGKILL a service's whole session at once (what a crashed machine does); returns its pid once every
    process of the session is gone."""
    sid = int(_pid_file(name).read_text())
    members = _session_members(sid)
    _kill_all(members)
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in members) and time.monotonic() < deadline:
        time.sleep(0.05)
    return sid


def down(*, quiet: bool = False) -> list[str]:
    """Stop every service this home started (the worker first, so it can finish what it runs)."""
    stopped = []
    for service in reversed(deployment.SERVICES):
        if _pid_file(service.name).exists():
            stop(service.name)
            stopped.append(service.name)
    _state_file().unlink(missing_ok=True)
    if not quiet:
        print(f"airflow: stopped {', '.join(stopped)}" if stopped else "airflow: nothing was running")
    return stopped


# ---------------------------------------------------------------- CLI
def up_command(args) -> int:
    info = up()
    print(f"airflow: running with the {info['executor']}"
          + (f" on {warehouse.redact(info['broker_url'])}" if info["broker_url"] else ""))
    print(f"  UI and REST API: {info['api_url']}  (user {deployment.ADMIN_USER}, password in {info['password_file']})")
    print(f"  metadata database: {info['metadata_url']}")
    print(f"  service logs: {info['logs']}; task logs: {info['task_logs']}")
    print("  `creditplus airflow status` lists the services; `creditplus airflow down` stops them")
    return 0


def status_command(args) -> int:
    info, services = state(), running_services()
    if not services:
        print("airflow: not running (`creditplus airflow up` starts it)")
        return 3
    print(f"airflow: executor {info['executor'] if info else 'unknown'}; API {info['api_url'] if info else '?'}")
    healthy = api_health(info["api_url"]) if info else set()
    for r in services:
        print(f"  {r.name:<14} pid {r.pid:<8} {'running' if r.alive else 'STOPPED'}")
    print(f"  health: {', '.join(sorted(healthy)) or 'the API does not answer'}")
    return 0 if all(r.alive for r in services) else 1


def down_command(args) -> int:
    down()
    return 0
