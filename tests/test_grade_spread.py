"""The generated city grades plausibly under scoring-model-v1: mostly C–B, a few A and D–E, leading mostly A–B."""
from __future__ import annotations

import datetime as dt
from collections import Counter

from creditplus import dbt_runner, load, warehouse
from creditplus.platform.generator import generate

END = dt.date(2026, 11, 26)


def test_a_generated_city_has_a_plausible_grade_spread(make_database, tmp_path):
    generate(tmp_path, 3000, 42, END, 5)
    url = make_database("cp_spread")
    with warehouse.connect(url) as conn:
        warehouse.setup(conn)
        load.archive_dataset_dir(conn, tmp_path, "spread")
    dbt_runner.build(END, warehouse_url=url, select="+fct_enterprise_evaluation")
    with warehouse.connect(url) as conn:
        rows = conn.execute("select is_leading, grade, count(*) from marts.fct_enterprise_evaluation"
                            " group by 1, 2").fetchall()
    grades = {lead: Counter({g: n for is_leading, g, n in rows if is_leading == lead}) for lead in (False, True)}
    others, leading = grades[False], grades[True]
    share = {g: others[g] / others.total() for g in "ABCDE"}
    assert share["B"] + share["C"] >= 0.60 and 0.05 <= share["A"] <= 0.15, grades
    assert 0.05 <= share["D"] + share["E"] <= 0.12 and share["D"] and share["E"], grades
    assert leading.total() >= 20 and leading["A"] + leading["B"] >= 0.8 * leading.total(), grades
