"""Run the dbt project (dbt_project/) as a subprocess of the venv's dbt, and generate the
staging layer from the resource registry.

``build(D)``   dbt build for evaluation date D (seeds, models, tests); raises ``DbtError``
               naming every failing node with its message.
``parse()``    writes dbt_project/target/manifest.json (Cosmos renders the DAG from it);
               needs no database and no network.
``python -m creditplus.dbt_runner generate`` rewrites the sources yml and the stg_ models
from ``creditplus.resources``; tests/test_scoring_project.py checks they are in sync.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from creditplus import config, resources as R

DBT = Path(sys.executable).with_name("dbt")
MODEL_SCHEMAS = ("staging", "intermediate", "marts")
DBT_WORK_MEM = "64MB"  # per sort/hash node of a dbt session (2 threads)

# Field kind (registry) -> how staging types it (macro stg_latest).
SQL_TYPES = {
    R.TEXT: "text", R.USCC: "text", R.SUBJECT_ID: "text", R.INT: "integer", R.COUNT: "integer",
    R.BOOL: "boolean", R.DATE: "date", R.MONTH: "month", R.TIMESTAMP: "timestamptz",
    R.MONEY: "numeric", R.SIGNED_MONEY: "numeric", R.OBJECT: "jsonb",
}


class DbtError(RuntimeError):
    """dbt failed; the message lists the failing nodes and what they said."""


def _env(warehouse_url: str | None) -> dict[str, str]:
    from creditplus import warehouse

    env = {**os.environ, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    env.update(warehouse.dbt_env(warehouse_url))
    # The nightly models join and sort millions of rows (population x indicators): with PostgreSQL's
    # default 4MB work_mem they spill to disk. Every dbt connection gets this (libpq reads PGOPTIONS).
    work_mem = os.environ.get("CREDITPLUS_DBT_WORK_MEM", DBT_WORK_MEM)
    env["PGOPTIONS"] = f"{env.get('PGOPTIONS', '')} -c work_mem={work_mem}".strip()
    return env


def _placeholder_env() -> dict[str, str]:
    """Parsing renders profiles.yml but never connects: placeholders suffice."""
    env = {**os.environ, "DO_NOT_TRACK": "1", "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    for name, value in (("HOST", "127.0.0.1"), ("PORT", "5432"), ("USER", "postgres"),
                        ("PASSWORD", ""), ("DATABASE", "postgres")):
        env.setdefault(f"CREDITPLUS_PG{name}", value)
    return env


def run(args: list[str], *, env: dict[str, str], project_dir: Path | None = None,
        target_path: Path | None = None) -> subprocess.CompletedProcess:
    """Run ``dbt ARGS`` in the project; raise ``DbtError`` with the failing nodes on failure."""
    project = Path(project_dir or config.DBT_PROJECT_DIR)
    target = Path(target_path or project / "target")
    cmd = [str(DBT), *args, "--project-dir", str(project), "--profiles-dir", str(project),
           "--target-path", str(target)]
    (target / "run_results.json").unlink(missing_ok=True)  # a failure must not report an older run
    proc = subprocess.run(cmd, env={**env, "DBT_LOG_PATH": str(target / "logs")},
                          capture_output=True, text=True)
    if proc.returncode != 0:
        raise DbtError(_failure_message(args, target, proc))
    return proc


def _failure_message(args: list[str], target: Path, proc: subprocess.CompletedProcess) -> str:
    failures = []
    results = target / "run_results.json"
    if results.exists():
        for r in json.loads(results.read_text()).get("results", []):
            if r["status"] in ("error", "fail", "runtime error"):
                failures.append(f"{r['unique_id']}: {r['status']}: {(r.get('message') or '').strip()}")
    detail = "\n".join(failures) or "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-25:])
    return f"dbt {args[0]} failed:\n{detail}"


def build(evaluation_date: dt.date | str, *, warehouse_url: str | None = None, select: str | None = None,
          vars: dict | None = None, project_dir: Path | None = None, target_path: Path | None = None,
          full_refresh: bool = False, unit_tests: bool = False) -> None:
    """``dbt build`` of evaluation date D (all nodes, or ``select``) into the warehouse.

    The nightly build leaves the dbt unit tests out (``unit_tests=True`` runs them too; the test suite
    does, ``unit_test()`` runs only them). D goes to dbt as env ``CREDITPLUS_EVALUATION_DATE`` (macro
    evaluation_date_text), not as a var: the vars stay the same from night to night, so dbt's partial
    parse (cached per project and warehouse, ``_PARSE_CACHE``) is reused instead of parsing the whole project again.

    Each call gets its own target directory (unless ``target_path``) so that concurrent builds and
    the manifest Cosmos reads from dbt_project/target never see each other's files.
    """
    args = ["build"]
    if vars:
        args += ["--vars", json.dumps(vars)]
    if select:  # only the tests whose parents are all built
        args += ["--select", select, "--indirect-selection", "buildable"]
    if not unit_tests:
        args += ["--exclude-resource-type", "unit_test"]
    if full_refresh:
        args.append("--full-refresh")
    env = {**_env(warehouse_url), "CREDITPLUS_EVALUATION_DATE": str(evaluation_date)}
    with tempfile.TemporaryDirectory(prefix="creditplus-dbt-") as scratch:
        _run_cached(args, env=env, project_dir=project_dir, target_path=Path(target_path or scratch))


def data_test(evaluation_date: dt.date | str, *, warehouse_url: str | None = None) -> None:
    """Run only the dbt data tests of evaluation date D (what a build runs after each node); raises ``DbtError``
    naming every failing test."""
    env = {**_env(warehouse_url), "CREDITPLUS_EVALUATION_DATE": str(evaluation_date)}
    with tempfile.TemporaryDirectory(prefix="creditplus-dbt-") as scratch:
        _run_cached(["test", "--exclude-resource-type", "unit_test"], env=env, project_dir=None,
                    target_path=Path(scratch))


def unit_test(*, warehouse_url: str | None = None, project_dir: Path | None = None,
              target_path: Path | None = None) -> None:
    """Run only the dbt unit tests (they need the models' parents to exist: run after a build)."""
    env = {**_env(warehouse_url), "CREDITPLUS_EVALUATION_DATE": "2026-11-26"}  # each unit test sets its own
    with tempfile.TemporaryDirectory(prefix="creditplus-dbt-") as scratch:
        _run_cached(["test", "--select", "test_type:unit"], env=env, project_dir=project_dir,
                    target_path=Path(target_path or scratch))


_PARSE_CACHE = Path("target") / "partial-parse-cache"  # under the project, one file per warehouse and vars
_PARSE_CACHE_KEEP = 8  # the most recently used warehouses


def _run_cached(args: list[str], *, env: dict[str, str], project_dir: Path | None, target_path: Path) -> None:
    """``run`` seeded with the project's cached partial parse, which a successful run refreshes.
    dbt checks every file's checksum, the vars and the profile before it reuses a partial parse."""
    project = Path(project_dir or config.DBT_PROJECT_DIR)
    # dbt discards a partial parse made with another profile (connection) or other vars: one cache for each
    vars_ = args[args.index("--vars") + 1] if "--vars" in args else ""
    key = "|".join([*(env.get(f"CREDITPLUS_PG{k}", "") for k in ("HOST", "PORT", "USER", "DATABASE")), vars_])
    cache = project / _PARSE_CACHE / f"{hashlib.sha1(key.encode()).hexdigest()[:16]}.msgpack"
    target_path.mkdir(parents=True, exist_ok=True)
    mine = target_path / "partial_parse.msgpack"
    if cache.exists() and not mine.exists():
        shutil.copyfile(cache, mine)
    run(args, env=env, project_dir=project, target_path=target_path)
    if mine.exists():
        try:
            cache.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache.with_name(f".{os.getpid()}.{cache.name}")
            shutil.copyfile(mine, tmp)
            os.replace(tmp, cache)  # atomic: a concurrent build reads the old or the new file, never half
            for stale in sorted(cache.parent.glob("*.msgpack"), key=lambda p: p.stat().st_mtime)[:-_PARSE_CACHE_KEEP]:
                stale.unlink(missing_ok=True)  # scratch warehouses (tests, compare) come and go
        except OSError:
            pass  # a cache only


def warm_parse(warehouse_url: str) -> float:
    """Parse the project for the builds on this warehouse (the partial parse ``build`` reuses), as a night
    finds it after the first; seconds taken."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="creditplus-dbt-") as scratch:
        _run_cached(["parse"], env=_env(warehouse_url), project_dir=None, target_path=Path(scratch))
    return time.perf_counter() - start


def parse(*, project_dir: Path | None = None) -> Path:
    """Write ``target/manifest.json`` (no database, no network); return its path."""
    project = Path(project_dir or config.DBT_PROJECT_DIR)
    # evaluation_date is required at run time only; parsing validates its shape with a placeholder.
    run(["parse", "--vars", json.dumps({"evaluation_date": "2000-01-01"})], env=_placeholder_env(),
        project_dir=project)
    return project / "target" / "manifest.json"


# ---------------------------------------------------------------- staging generated from the registry
GENERATED = "GENERATED from creditplus.resources by `python -m creditplus.dbt_runner generate`; do not edit."


def _types(fields) -> dict[str, str]:
    return {f.name: SQL_TYPES[f.kind] for f in fields}


def registry() -> dict:
    """What dbt needs of the registry: per resource its key, typed fields, negative flag
    (and for self_reports the payload of each kind, counted as a record of resource kind + "s")."""
    out = {}
    for res in R.RESOURCES:
        entry = {"key": list(res.key), "negative": res.negative, "fields": _types(res.fields)}
        if res.name == "self_reports":
            entry["payloads"] = {kind: {"resource": R.resource(kind + "s").name, "fields": _types(fields)}
                                 for kind, fields in R.SELF_REPORT_PAYLOADS.items()}
        out[res.name] = entry
    return out


def registry_macro() -> str:
    return (f"{{# {GENERATED} #}}\n"
            "{% macro registry() %}{{ return(" + json.dumps(registry(), ensure_ascii=False) + ") }}{% endmacro %}\n")


def sources_yml() -> str:
    lines = [f"# {GENERATED}", "version: 2", "", "sources:", "  - name: raw", "    schema: raw",
             "    description: Append-only archive of every valid record version received from the platform.",
             "    tables:"]
    for res in R.RESOURCES:
        lines += [f"      - name: {res.name}", "        columns:"]
        # no data tests here: raw's DDL makes key columns and updated_at not null and unique together
        lines += [f"          - name: {k}\n            data_type: text" for k in res.key]
        lines += ["          - name: updated_at\n            data_type: timestamptz",
                  "          - name: record\n            data_type: jsonb"]
    return "\n".join(lines) + "\n"


def staging_model_sql(res: R.Resource) -> str:
    return f"{{{{ stg_latest('{res.name}') }}}}\n"


def staging_model_yml(res: R.Resource) -> str:
    key = list(res.key)
    lines = [f"# {GENERATED}", "version: 2", "", "models:", f"  - name: stg_{res.name}",
             f"    description: Latest valid version of each {res.name} record with updated_at before the cutoff of "
             "evaluation_date, fields typed from the record JSONB (one row per key by construction, distinct on).",
             "    columns:"]
    for k in key:
        lines.append(f"      - name: {k}\n        description: key")
    return "\n".join(lines) + "\n"


def generated_files(project_dir: Path | None = None) -> dict[Path, str]:
    """Every file generated from the registry, with its content."""
    project = Path(project_dir or config.DBT_PROJECT_DIR)
    staging = project / "models" / "staging"
    files = {staging / "_sources.yml": sources_yml(), project / "macros" / "registry.sql": registry_macro()}
    for res in R.RESOURCES:
        files[staging / f"stg_{res.name}.sql"] = staging_model_sql(res)
        files[staging / f"stg_{res.name}.yml"] = staging_model_yml(res)
    return files


def generate(project_dir: Path | None = None) -> list[Path]:
    written = []
    for path, text in generated_files(project_dir).items():
        if not path.exists() or path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")
            written.append(path)
    return written


if __name__ == "__main__":
    if sys.argv[1:] == ["generate"]:
        for p in generate():
            print(f"wrote {p}")
    elif sys.argv[1:] == ["parse"]:
        print(parse())
    else:
        sys.exit("usage: python -m creditplus.dbt_runner generate|parse")
