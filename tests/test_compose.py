"""docker-compose.yml describes a consistent deployment (no Docker engine here: the file is
checked, not run): pinned images, every Airflow component on the CeleryExecutor with its
broker and metadata database, the DAG folder and both connections wired to the services
that provide them, and only settings that creditplus.config knows."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from creditplus import airflow_env, cli, config

COMPOSE = config.PROJECT_ROOT / "docker-compose.yml"
AIRFLOW_COMMANDS = {"api-server", "scheduler", "dag-processor", "celery worker", "triggerer"}
ENV = {"AIRFLOW_FERNET_KEY": "fernet", "AIRFLOW_JWT_SECRET": "jwt", "WAREHOUSE_PASSWORD": "wh-secret",
       "CREDITPLUS_PLATFORM_TOKEN": "platform-secret"}
_VAR = re.compile(r"\$\{(\w+)(?::([-?])([^}]*))?\}")


def interpolate(value, env: dict[str, str]):
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, applied through the whole document."""
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match) -> str:
        name, op, arg = m.groups()
        if env.get(name):
            return env[name]
        if op == "?":
            raise KeyError(f"{name}: {arg}")
        return arg or ""

    return _VAR.sub(sub, value)


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(raw) -> dict:
    return interpolate(raw, ENV)["services"]


def command(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else cmd


def airflow_services(services: dict) -> dict[str, dict]:
    return {name: s for name, s in services.items() if command(s)[:1] == ["airflow"]}


def test_required_secrets_have_no_defaults(raw):
    with pytest.raises(KeyError, match="WAREHOUSE_PASSWORD"):
        interpolate(raw, {k: v for k, v in ENV.items() if k != "WAREHOUSE_PASSWORD"})


def test_images_are_pinned(services):
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"
        if "build" in service:
            base = re.search(r"^FROM (\S+)", service["build"]["dockerfile_inline"], re.M)[1]
            assert re.fullmatch(r"apache/airflow:\d+\.\d+\.\d+-python3\.11", base), base


def test_the_image_installs_the_locked_airflow(services):
    dockerfile = services["airflow-scheduler"]["build"]["dockerfile_inline"]
    lock = (config.PROJECT_ROOT / "requirements.lock").read_text()
    locked = re.search(r"^apache-airflow==(\S+)$", lock, re.M)[1]
    assert f"FROM apache/airflow:{locked}-" in dockerfile and f'"apache-airflow=={locked}"' in dockerfile
    for folder in ("src", "dags", "dbt_project"):
        assert f"COPY --chown=airflow:root {folder} /opt/creditplus/{folder}" in dockerfile
    assert "creditplus.dbt_runner parse" in dockerfile  # Cosmos renders the DAG from the manifest


def test_every_airflow_component_runs_on_celery(services):
    found = {" ".join(command(s)[1:]) for s in airflow_services(services).values()}
    assert AIRFLOW_COMMANDS <= found
    init = " ".join(command(services["airflow-init"]))
    assert "airflow db migrate" in init
    for name, service in airflow_services(services).items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert re.match(r"redis://redis:6379/", env["AIRFLOW__CELERY__BROKER_URL"]), name
        assert "@airflow-db:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"].startswith("http://airflow-apiserver:8080/"), name
        assert env["AIRFLOW__CORE__LOAD_EXAMPLES"] == "false", name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"
    assert "redis" in services and services["redis"]["image"].startswith("redis:")


def test_dag_folder_is_the_projects_dags(services):
    for name, service in airflow_services(services).items():
        folder = service["environment"]["AIRFLOW__CORE__DAGS_FOLDER"]
        assert folder == "/opt/creditplus/dags", name
    assert (config.DAGS_DIR / "credit_nightly.py").exists()


def test_connections_point_at_the_warehouse_and_the_simulator(services):
    warehouse_env = services["warehouse"]["environment"]
    serve = command(services["simulator"])
    port = serve[serve.index("--port") + 1]
    for name, service in airflow_services(services).items():
        env = service["environment"]
        wh = json.loads(env[f"AIRFLOW_CONN_{airflow_env.WAREHOUSE_CONN_ID.upper()}"])
        assert (wh["conn_type"], wh["host"], wh["port"]) == ("postgres", "warehouse", 5432), name
        assert (wh["login"], wh["password"], wh["schema"]) == (
            warehouse_env["POSTGRES_USER"], warehouse_env["POSTGRES_PASSWORD"], warehouse_env["POSTGRES_DB"]), name
        platform = json.loads(env[f"AIRFLOW_CONN_{airflow_env.PLATFORM_CONN_ID.upper()}"])
        assert platform["host"] == f"http://simulator:{port}", name
        assert platform["password"] == services["simulator"]["environment"]["CREDITPLUS_PLATFORM_TOKEN"], name


def test_connections_round_trip_through_creditplus(services):
    """What the tasks rebuild from the compose connections is what the services offer."""
    from airflow.sdk import Connection

    env = services["airflow-worker"]["environment"]
    wh = Connection.from_json(env["AIRFLOW_CONN_CREDITPLUS_WAREHOUSE"], conn_id="w")
    assert airflow_env.warehouse_url(wh) == "postgresql://creditplus:wh-secret@warehouse:5432/creditplus"
    platform = Connection.from_json(env["AIRFLOW_CONN_CREDITPLUS_PLATFORM"], conn_id="p")
    assert airflow_env.platform(platform) == ("http://simulator:8600", "platform-secret")


def test_only_known_creditplus_settings(raw):
    known = set(re.findall(r"(?<![A-Z_])CREDITPLUS_[A-Z_]+", (config.PROJECT_ROOT / "src/creditplus/config.py").read_text()))
    used = set(re.findall(r"(?<![A-Z_])CREDITPLUS_[A-Z_]+", COMPOSE.read_text()))
    assert used <= known, f"unknown settings: {used - known}"


def test_simulator_commands_follow_the_cli_contract(services, tmp_path):
    for name in ("simulator", "simulator-data"):
        argv = command(services[name])
        if argv[0] == "bash":
            argv = shlex.split(argv[-1].split("||")[-1])
        assert argv[0] == "creditplus", name
        args = [str(tmp_path) if a.startswith("/data/") and argv[argv.index(a) - 1] == "--data" else a
                for a in argv[1:]]
        cli.build_parser().parse_args(args)  # exits (SystemExit) on anything the CLI does not accept
