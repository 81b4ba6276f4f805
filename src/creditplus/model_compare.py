"""``creditplus model compare --from V1 --to V2 --date D``: on the same archived data, score D under
both model versions and show how grades would move (第六条).

Each version is built with dbt (var ``model_version``) into scratch schemas ``<schema>_cmp_<version>``,
compared in SQL, and the scratch schemas are dropped; the nightly marts are not touched.
"""
from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from pathlib import Path

from psycopg import sql

from creditplus import dbt_runner, warehouse
from creditplus.errors import UserError

GRADES = ("A", "B", "C", "D", "E", "-")  # "-": not graded under that version
SCORING_NODES = "+fct_enterprise_evaluation +fct_indicator_score"


@dataclass
class Comparison:
    from_version: str
    to_version: str
    evaluation_date: dt.date
    matrix: dict[tuple[str, str], int]  # (from grade, to grade) -> enterprises
    movers: list[tuple]                 # (uscc, name, from total, from grade, to total, to grade)

    def render(self) -> str:
        head = f"grade migration {self.from_version} -> {self.to_version} on {self.evaluation_date} (rows: {self.from_version}, columns: {self.to_version})"
        lines = [head, "      " + "".join(f"{g:>7}" for g in GRADES)]
        for f in GRADES:
            lines.append(f"{f:>6}" + "".join(f"{self.matrix.get((f, t), 0):>7}" for t in GRADES))
        lines.append(f"{len(self.movers)} enterprises change grade:")
        lines += [f"  {u} {n or ''}: {ft} {fg} -> {tt} {tg}" for u, n, ft, fg, tt, tg in self.movers]
        return "\n".join(lines)


def _suffix(version: str) -> str:
    if not re.fullmatch(r"[A-Za-z0-9_]+", version):
        raise UserError(f"model version {version!r} must be letters, digits or _ (e.g. v2)")
    return f"_cmp_{version.lower()}"


def compare(from_version: str, to_version: str, evaluation_date: dt.date | str, *,
            warehouse_url: str | None = None, project_dir: Path | None = None) -> Comparison:
    target = warehouse_url or warehouse.url()
    suffixes = {v: _suffix(v) for v in (from_version, to_version)}
    try:
        for version, suffix in suffixes.items():
            dbt_runner.build(evaluation_date, warehouse_url=target, select=SCORING_NODES, project_dir=project_dir,
                             vars={"model_version": version, "schema_suffix": suffix})
        with warehouse.connect(target) as conn:
            a, b = (sql.Identifier(f"marts{suffixes[v]}", "fct_enterprise_evaluation") for v in (from_version, to_version))
            rows = conn.execute(sql.SQL(
                "select a.uscc, coalesce(a.enterprise_name, b.enterprise_name), a.total_score, coalesce(a.grade, '-'),"
                " b.total_score, coalesce(b.grade, '-')"
                " from {} a full join {} b using (uscc) order by 1").format(a, b)).fetchall()
    finally:
        _drop_scratch(target, suffixes.values())
    matrix: dict[tuple[str, str], int] = {}
    for row in rows:
        matrix[(row[3], row[5])] = matrix.get((row[3], row[5]), 0) + 1
    movers = [row for row in rows if row[3] != row[5]]
    return Comparison(from_version, to_version, dt.date.fromisoformat(str(evaluation_date)), matrix, movers)


def _drop_scratch(target: str, suffixes) -> None:
    with warehouse.connect(target, autocommit=True) as conn:
        for suffix in suffixes:
            for schema in dbt_runner.MODEL_SCHEMAS:
                conn.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema + suffix)))


def main(args) -> int:
    try:
        result = compare(args.from_version, args.to_version, args.date)
    except dbt_runner.DbtError as exc:
        raise UserError(str(exc)) from None
    print(result.render())
    return 0
