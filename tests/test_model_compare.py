"""``creditplus model compare``: the same archived data scored under two model versions."""
from __future__ import annotations

import csv
import datetime as dt
import io

from creditplus import dbt_runner, model_compare, warehouse
from test_scoring import CASE, D, archive, copy_project, fresh_warehouse

TAX_A = "9123110274367548XQ"      # CASES.md #42: 811 B under v1 (O5 A = 140)
TAX_D = "91231123705591998N"      # #43: 671 D, no tax A: does not move


def add_version_v2(project, effective_from="2027-01-01"):
    """v2 = v1 with tax rating A worth 200 (O5 max 200), in force from 2027."""
    seeds = project / "seeds"
    for path in seeds.glob("scoring_*.csv"):
        rows = list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8"))))
        v2 = [{**r, "model_version": "v2"} for r in rows if r["model_version"] == "v1"]
        for r in v2:
            if "effective_from" in r:
                r["effective_from"] = effective_from
            if r.get("indicator_code") == "O5" and r.get("category") == "A":
                r["points"] = "200"
            if r.get("indicator_code") == "O5" and "max_points" in r:
                r["max_points"] = "200"
        with open(path, "a", encoding="utf-8", newline="") as out:
            csv.DictWriter(out, fieldnames=list(rows[0])).writerows(v2)


def test_compare_shows_grade_migration_without_touching_the_nightly_marts(make_database, tmp_path):
    url = fresh_warehouse(make_database)
    archive(url, CASE / "dataset", "acceptance")
    project = copy_project(tmp_path)
    add_version_v2(project)

    result = model_compare.compare("v1", "v2", D, warehouse_url=url, project_dir=project)

    movers = {m[0]: m for m in result.movers}
    assert movers[TAX_A][2:] == (811, "B", 871, "A")
    assert TAX_D not in movers
    assert all(to_total - from_total == 60 for _, _, from_total, _, to_total, _ in movers.values())
    assert sum(result.matrix.values()) == 179 and result.matrix.get(("-", "-"), 0) == 0
    assert sum(n for (f, t), n in result.matrix.items() if f != t) == len(result.movers) > 0
    text = result.render()
    assert "grade migration v1 -> v2 on 2026-11-26" in text and TAX_A in text
    with warehouse.connect(url) as conn:  # scratch schemas dropped, nightly marts never built
        left = conn.execute("select count(*) from information_schema.schemata"
                            " where schema_name like '%\\_cmp\\_%' or schema_name = 'marts'").fetchone()[0]
    assert left == 0


def test_version_in_force_is_chosen_by_effective_from(make_database, tmp_path):
    url = fresh_warehouse(make_database)
    archive(url, CASE / "dataset", "acceptance")
    project = copy_project(tmp_path)
    add_version_v2(project, effective_from=str(D))
    dbt_runner.build(D, warehouse_url=url, project_dir=project, select="+fct_enterprise_evaluation")
    with warehouse.connect(url) as conn:
        assert conn.execute("select model_version, total_score from marts.fct_enterprise_evaluation where uscc = %s",
                            (TAX_A,)).fetchone() == ("v2", 871)
    dbt_runner.build(D - dt.timedelta(days=1), warehouse_url=url, project_dir=project, select="+fct_enterprise_evaluation")
    with warehouse.connect(url) as conn:
        assert conn.execute("select distinct model_version from marts.fct_enterprise_evaluation").fetchall() == [("v1",)]


def test_the_command_line_refuses_a_malformed_version_in_one_line(tmp_path):
    """OPERATIONS.md, "Move to a new scoring model version": `creditplus model compare` (its checks before any build)."""
    import os
    import subprocess

    from conftest import CLI

    result = subprocess.run([CLI, "model", "compare", "--from", "v1", "--to", "v-2", "--date", "2026-11-26"],
                            env={**os.environ, "CREDITPLUS_HOME": str(tmp_path),
                                 "CREDITPLUS_WAREHOUSE_URL": "postgresql://postgres@127.0.0.1:1/none"},
                            capture_output=True, text=True)
    assert (result.returncode, result.stderr) == (
        2, "creditplus: error: model version 'v-2' must be letters, digits or _ (e.g. v2)\n")
