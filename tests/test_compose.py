"""docker-compose.yml would start (no Docker engine here: the file is checked, not run): it is what
``creditplus.deployment`` generates (the definition ``creditplus airflow up`` starts natively), valid
against the Compose Specification's JSON schema, every command and health check one that the image's
Airflow, Celery or creditplus CLI accepts, secrets only from ``.env`` (documented in .env.example), the
project's home on a volume, and the connections wired to the services that provide them."""
from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
import yaml

from creditplus import airflow_env, cli, config, deployment

COMPOSE = config.PROJECT_ROOT / "docker-compose.yml"
ENV_EXAMPLE = config.PROJECT_ROOT / ".env.example"
SCHEMA = Path(__file__).parent / "vendor" / "compose-spec.json"
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


def documented_variables() -> dict[str, str]:
    """Every variable .env.example names (set or commented out), with a stand-in value."""
    names = re.findall(r"^#?\s*([A-Z][A-Z0-9_]+)=", ENV_EXAMPLE.read_text(), re.M)
    return {name: f"{name.lower()}-value" for name in names}


@pytest.fixture(scope="module")
def raw() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(raw) -> dict:
    required = {k: v for k, v in documented_variables().items() if k in deployment.COMPOSE_SECRETS}
    return interpolate(raw, required)["services"]


def command(service: dict) -> list[str]:
    cmd = service.get("command", [])
    return shlex.split(cmd) if isinstance(cmd, str) else cmd


def airflow_services(services: dict) -> dict[str, dict]:
    return {name: s for name, s in services.items() if command(s)[:1] == ["airflow"]}


def test_the_file_is_what_the_deployment_definition_generates():
    assert COMPOSE.read_text() == deployment.compose_yaml(), \
        "docker-compose.yml is stale: python -m creditplus.deployment > docker-compose.yml"


def test_the_file_is_valid_against_the_compose_specification(raw):
    import jsonschema

    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(raw)
    broken = {**raw, "services": {**raw["services"], "redis": {**raw["services"]["redis"], "healthcheck": "ping"}}}
    with pytest.raises(jsonschema.ValidationError):  # the schema does judge the services
        jsonschema.Draft7Validator(schema).validate(broken)


def test_the_services_are_the_ones_airflow_up_starts(services):
    expected = {f"airflow-{s.name}": ["airflow", *s.args] for s in deployment.SERVICES}
    assert {name: command(s) for name, s in airflow_services(services).items()} == expected
    assert command(services["airflow-init"]) == ["creditplus", "airflow", "init"]
    settings = deployment.airflow_settings(deployment.compose_endpoints())
    for name in [*expected, "airflow-init"]:
        assert set(services[name]["environment"]) == set(settings), name


def test_every_command_and_health_check_exists_in_the_image(services):
    """Airflow's own parser accepts each `airflow ...`, creditplus's each `creditplus ...`, Celery knows
    `inspect`; what else a health check runs comes with its image (pg_isready, redis-cli, curl, python)."""
    import click
    from airflow.cli.cli_parser import get_parser
    from celery.bin.celery import celery

    airflow_parser, creditplus_parser = get_parser(), cli.build_parser()
    seen = set()
    for name, service in services.items():
        argvs = [command(service)] if "command" in service else []  # postgres and redis: their image's own
        if "healthcheck" in service:
            argvs.append(service["healthcheck"]["test"][1:])
        for argv in argvs:
            if argv[:1] == ["bash"]:  # bash -c "test -d ... || creditplus ..."
                argv = shlex.split(argv[-1].split("||")[-1])
            seen.add(argv[0])
            if argv[0] == "airflow":
                airflow_parser.parse_args(argv[1:])  # SystemExit on an unknown command or option
            elif argv[0] == "creditplus":
                creditplus_parser.parse_args([a if not a.startswith("/data/") or argv[argv.index(a) - 1] != "--data"
                                              else str(config.PROJECT_ROOT) for a in argv[1:]])
            elif argv[0] == "celery":
                assert celery.get_command(click.Context(celery), argv[argv.index("--app") + 2]), argv
            else:
                assert argv[0] in {"pg_isready", "redis-cli", "curl", "python"}, f"{name}: unknown program {argv[0]}"
    assert {"airflow", "creditplus", "celery"} <= seen


def test_every_long_running_service_has_a_health_check(services):
    for name, service in services.items():
        if service.get("restart") != "no":
            assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
    assert all(s["depends_on"]["airflow-init"] == {"condition": "service_completed_successfully"}
               for s in airflow_services(services).values())


def test_secrets_come_only_from_the_env_file(raw):
    """No secret has a value in the file; each required one stops compose with a message naming .env;
    .env.example documents every variable the file reads, and .gitignore keeps .env out."""
    text = COMPOSE.read_text()
    read = set(re.findall(r"\$\{(\w+)", text))
    assert read <= set(documented_variables()), f"undocumented in .env.example: {read - set(documented_variables())}"
    for name in deployment.COMPOSE_SECRETS:
        assert f"${{{name}:?set {name} in .env" in text, name
        with pytest.raises(KeyError, match=name):
            interpolate(raw, {k: v for k, v in documented_variables().items() if k != name})
    env = raw["x-airflow-common"]["environment"]
    for key, value in env.items():
        if re.search(r"(PASSWORD|SECRET|FERNET_KEY|TOKEN)$", key) or key.startswith("AIRFLOW_CONN_"):
            assert "${" in value or value == "", f"{key} has a literal value"
    assert ".env" in (config.PROJECT_ROOT / ".gitignore").read_text().split()


def test_the_projects_home_outlives_a_container(services, raw):
    """Data Docs, reports and the admin password live on the creditplus-home volume in every Airflow container."""
    assert "creditplus-home" in raw["volumes"]
    for name in [*airflow_services(services), "airflow-init"]:
        home = services[name]["environment"]["CREDITPLUS_HOME"]
        assert f"creditplus-home:{home}" in services[name]["volumes"], name
        assert services[name]["environment"]["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"].startswith(home)


def test_the_command_line_inside_a_container_uses_the_warehouse(services):
    env = services["airflow-scheduler"]["environment"]
    assert env["CREDITPLUS_WAREHOUSE_URL"] == "postgresql://creditplus:warehouse_password-value@warehouse:5432/creditplus"
    assert env["CREDITPLUS_PLATFORM_TOKEN"] == services["simulator"]["environment"]["CREDITPLUS_PLATFORM_TOKEN"]


def test_images_are_pinned_and_install_the_locked_airflow(services):
    lock = (config.PROJECT_ROOT / "requirements.lock").read_text()
    locked = re.search(r"^apache-airflow==(\S+)$", lock, re.M)[1]
    for name, service in services.items():
        image = service["image"]
        assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned"
        if "build" in service:
            dockerfile = service["build"]["dockerfile_inline"]
            assert f"FROM apache/airflow:{locked}-python3.11" in dockerfile and f'"apache-airflow=={locked}"' in dockerfile
            for folder in ("src", "dags", "dbt_project", "expectations"):
                assert f"COPY --chown=airflow:root {folder} /opt/creditplus/{folder}" in dockerfile
            assert "creditplus.dbt_runner parse" in dockerfile  # Cosmos renders the DAG from the manifest


def test_every_airflow_component_runs_on_celery_with_its_broker_and_metadata_database(services):
    for name, service in airflow_services(services).items():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor", name
        assert re.match(r"redis://redis:6379/", env["AIRFLOW__CELERY__BROKER_URL"]), name
        assert "@airflow-db:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"], name
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/", name
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/creditplus/dags", name
        for dependency in service.get("depends_on", {}):
            assert dependency in services, f"{name} depends on unknown service {dependency}"


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
    assert airflow_env.warehouse_url(wh) == "postgresql://creditplus:warehouse_password-value@warehouse:5432/creditplus"
    platform = Connection.from_json(env["AIRFLOW_CONN_CREDITPLUS_PLATFORM"], conn_id="p")
    assert airflow_env.platform(platform) == ("http://simulator:8600", "creditplus_platform_token-value")


def test_only_known_creditplus_settings():
    known = set(re.findall(r"(?<![A-Z_])CREDITPLUS_[A-Z_]+", (config.PROJECT_ROOT / "src/creditplus/config.py").read_text()))
    used = set(re.findall(r"(?<![A-Z_])CREDITPLUS_[A-Z_]+", COMPOSE.read_text()))
    assert used <= known, f"unknown settings: {used - known}"
