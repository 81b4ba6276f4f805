"""The dbt project without a database: staging generated from the registry, manifest for Cosmos."""
from __future__ import annotations

import json

from creditplus import config, dbt_runner, resources


def test_staging_and_sources_are_generated_from_the_registry():
    stale = [str(p) for p, text in dbt_runner.generated_files().items()
             if not p.exists() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"run `python -m creditplus.dbt_runner generate`; stale: {stale}"
    stg = {p.stem for p in (config.DBT_PROJECT_DIR / "models" / "staging").glob("stg_*.sql")}
    assert stg == {f"stg_{r.name}" for r in resources.RESOURCES}


def test_parse_writes_the_manifest_with_the_contracted_marts(tmp_path):
    project = tmp_path / "p"
    import shutil
    shutil.copytree(config.DBT_PROJECT_DIR, project, ignore=shutil.ignore_patterns("target", "logs"))
    manifest = json.loads(dbt_runner.parse(project_dir=project).read_text())
    nodes = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    evaluation = nodes["fct_enterprise_evaluation"]
    assert evaluation["schema"] == "marts" and evaluation["config"]["contract"]["enforced"]
    assert list(evaluation["columns"]) == [
        "evaluation_date", "uscc", "enterprise_name", "legal_rep_name", "region_code", "industry_code", "is_leading",
        "model_version", "total_score", "grade", "computed_grade", "cap_reason", "basic_score", "operations_score",
        "social_score"]
    assert list(nodes["fct_indicator_score"]["columns"]) == [
        "evaluation_date", "uscc", "model_version", "indicator_code", "indicator_name", "indicator_name_en", "level1",
        "points", "max_points", "under_objection"]
    assert {nodes[f"stg_{r.name}"]["schema"] for r in resources.RESOURCES} == {"staging"}
    assert nodes["int_population"]["schema"] == "intermediate"
    units = [n for n in manifest["unit_tests"].values()]
    assert len(units) >= 8
