"""The one registry of publication channels (spec: publication-channels.md).

Each channel is a schema of read-only views and a NOLOGIN group role. ``CHANNELS``
mirrors the spec table; the views themselves are created by
``sql/setup/060_channels.sql`` and the tests hold the two in step (names, order and
types of every column, privileges of every role). ``docs/channels.md`` is generated
from here: ``python -m creditplus.channels`` rewrites it.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass

from creditplus import config
from creditplus.errors import UserError

# column -> (PostgreSQL type as format_type() prints it, 中文说明, English description)
COLUMNS: dict[str, tuple[str, str, str]] = {
    "uscc": ("text", "统一社会信用代码（18 位）", "unified social credit code (18 characters, GB 32100-2015)"),
    "enterprise_name": ("text", "企业名称", "registered name of the enterprise"),
    "legal_rep_name": ("text", "法定代表人姓名（仅信易贷名单，第十三条）",
                       "name of the legal representative (信易贷 list only, art. 13)"),
    "region_code": ("text", "行政区划代码（6 位）", "administrative region code (6 digits)"),
    "industry_code": ("text", "行业代码（GB/T 4754）", "industry code (GB/T 4754, e.g. C39)"),
    "is_leading": ("boolean", "是否认定的龙头企业", "designated leading enterprise (龙头企业)"),
    "evaluation_date": ("date", "评价日期 D（截至 D+1 日 0 时 +08:00 的信息）",
                        "evaluation date D (records known before D+1 00:00 +08:00)"),
    "model_version": ("text", "评分模型版本（第六条）", "scoring model version (art. 6)"),
    "total_score": ("integer", "总分（满分 1000）", "total score (0-1000)"),
    "grade": ("text", "信用等级 A–E（已适用一票否决）", "final grade A-E, after caps"),
    "computed_grade": ("text", "按总分计算的等级（未适用一票否决）", "grade from the total alone, before caps"),
    "cap_reason": ("text", "一票否决原因：serious_dishonesty 或 dishonest_debtor；无则为空",
                   "most severe cap that applies: serious_dishonesty or dishonest_debtor; null when none"),
    "basic_score": ("integer", "基本情况得分（满分 60）", "basic information score (max 60)"),
    "operations_score": ("integer", "经营状况得分（满分 790）", "operations score (max 790)"),
    "social_score": ("integer", "社会责任得分（满分 150）", "social responsibility score (max 150)"),
    "previous_grade": ("text", "上一次发布的等级：当前发布之前、评价日期早于当前评价日期的最近一次发布中的等级；该次未评价则为空",
                       "grade in the previous publication: of the publications made before the current one "
                       "with an earlier evaluation date, the one with the latest date (latest published on a tie); "
                       "null when the enterprise was not graded there"),
    "published_at": ("timestamp with time zone", "发布时间", "when this evaluation was published"),
    "indicator_code": ("text", "二级指标代码（如 B1、O5、S3）", "indicator code (e.g. B1, O5, S3)"),
    "indicator_name": ("text", "指标名称", "indicator name (Chinese)"),
    "indicator_name_en": ("text", "指标英文名称", "indicator name (English)"),
    "level1": ("text", "一级指标（基本情况、经营状况、社会责任）", "level-1 category (basic, operations, social)"),
    "points": ("integer", "指标得分", "points scored on the indicator"),
    "max_points": ("integer", "指标满分", "maximum points of the indicator"),
    "under_objection": ("boolean", "是否有记录处于异议处理中（第十四条）",
                        "a record counted here is under an open objection (art. 14)"),
    "notification_id": ("bigint", "通报编号", "notification id"),
    "reason": ("text", "重新评价原因：objection_upheld、credit_repair、self_report_confirmed",
               "why the result was re-evaluated: objection_upheld, credit_repair, self_report_confirmed"),
    "old_grade": ("text", "原等级", "grade before the re-evaluation"),
    "new_grade": ("text", "新等级", "grade after the re-evaluation"),
    "old_score": ("integer", "原总分", "total score before the re-evaluation"),
    "new_score": ("integer", "新总分", "total score after the re-evaluation"),
    "created_at": ("timestamp with time zone", "通报生成时间", "when the notification was created"),
    "leading_uscc": ("text", "龙头企业统一社会信用代码", "uscc of the leading enterprise"),
    "partner_uscc": ("text", "供应链伙伴统一社会信用代码", "uscc of the supply-chain partner"),
    "relation": ("text", "关系：upstream（上游）、downstream（下游）", "relation: upstream or downstream"),
    "warning_type": ("text", "预警类型", "kind of warning"),
    "severity": ("text", "严重程度", "severity of the warning"),
    "detected_on": ("date", "发现日期", "date the risk was detected"),
    "detail": ("text", "详情：预警详情，或无法解析的说明", "details: of the warning, or of why the reference is unresolved"),
    "partners": ("integer", "评价日有效的供应链伙伴数", "partners linked on the evaluation date"),
    "share_weighted_score": ("numeric(6,1)", "已评价伙伴总分按占比加权的平均分（均无占比时为简单平均；无已评价伙伴为空）",
                             "partners' total scores averaged weighted by share (a plain average when no share "
                             "is known; null when no partner is graded)"),
    "high_risk_partners": ("integer", "高风险伙伴数：等级为 D、E，或当日有严重风险信号（失信、吊销注销等）",
                           "partners graded D or E, or with a serious signal on the date (dishonesty lists, "
                           "deregistration)"),
    "new_warnings": ("integer", "评价日新增的预警数", "warnings first raised on the evaluation date"),
    "objection_id": ("text", "异议编号", "objection id"),
    "submitted_at": ("timestamp with time zone", "异议提交时间", "when the objection was submitted"),
    "due_on": ("date", "办理期限：提交日之后第 7 个法定工作日（第十四条）",
               "due date: the 7th statutory working day after the submission date (art. 14)"),
    "status": ("text", "异议状态：submitted、processing、upheld、rejected",
               "objection status: submitted, processing, upheld, rejected"),
    "resolved_at": ("timestamp with time zone", "办结时间（未办结为空）", "when it was resolved (null while open)"),
    "working_days_used": ("integer", "提交后至办结日（未办结至今日）的工作日数",
                          "working days after submission up to resolution (or today while open)"),
    "overdue": ("boolean", "是否超期", "resolved after due_on, or still open after it"),
    "deadline_confirmed": ("boolean", "办理期限是否已确定：计算期限所跨日期中有年份的国务院放假安排"
                           "尚未载入工作日历（暂定推算）时为 false",
                           "false when due_on was counted over days of a year whose official schedule is not yet "
                           "in the calendar seed (counted provisionally): the deadline may still move"),
    "resource": ("text", "记录类别（信用平台的资源名）：未解析引用中为 objections、credit_repairs、self_reports、"
                 "supply_chain_links；得分明细中为计分记录所属资源，如 penalties、dishonest_debtors、patents、"
                 "self_reports、serious_dishonesty",
                 "kind of record (the credit platform's resource): objections, credit_repairs, self_reports or "
                 "supply_chain_links for an unresolved reference; in a score explanation the resource of the "
                 "scored record, e.g. penalties, dishonest_debtors, patents, self_reports, serious_dishonesty"),
    "record_key": ("text", "记录编号（信用平台上的编号：record_id、objection_id、repair_id、report_id 或 link_id）",
                   "the record's id on the credit platform (record_id, objection_id, repair_id, report_id or "
                   "link_id)"),
    "item_kind": ("text", "明细类型：base（扣分类指标的满分起点，加分类指标为 0）、band（所在分档）、category（所属类别）、"
                  "missing（数据缺失时的得分）、record（计分记录）、floor（扣分超过满分的部分不再扣）、"
                  "ceiling（加分超过满分的部分不计）、cap（触发一票否决的记录，不属于任何指标）",
                  "what the row is: base (a deduct indicator's maximum it starts from; 0 for a bonus indicator), "
                  "band, category, missing (the feature is unknown), record (a scored record), floor (deductions "
                  "beyond the maximum, not taken), ceiling (bonuses beyond the maximum, not given), cap (a record "
                  "that caps the grade, 一票否决; no indicator)"),
    "item": ("text", "明细项：分档 [下限,上限)、类别、记录的计分项（如 severe、active、invention）或一票否决代码",
             "the band [lower,upper), the category, the record's scoring item (e.g. severe, active, invention) "
             "or the cap (serious_dishonesty, dishonest_debtor)"),
    "record_date": ("date", "记录日期：计分规则所依据的日期（决定日、列入日、移出日、发生日、授权日、授予日）",
                    "the record's date the rule reads: decided_on, listed_on (removed_on for a listing removed "
                    "before D), occurred_on, granted_on or awarded_on"),
    "points_moved": ("integer", "该行计入的分值：扣分为负、加分为正；被排除的记录和一票否决行为 0；"
                     "同一指标各行之和等于指标得分",
                     "points the row moved: a deduction negative, a bonus positive, an excluded record and a cap 0; "
                     "the rows of an indicator sum to its points"),
    "excluded": ("boolean", "是否因信用修复通过或异议成立而不再作为评价依据（第十四条、第十六条）",
                 "an approved credit repair or an upheld objection took the record out (arts. 14, 16): it moved "
                 "no points and caps nothing"),
    "excluded_by": ("text", "排除该记录的决定：credit_repairs/修复编号 或 objections/异议编号（最先生效者）",
                    "the decision that excluded it: credit_repairs/<repair_id> or objections/<objection_id> (the "
                    "first to take effect)"),
    "reference": ("text", "无法解析的引用：统一社会信用代码，或目标记录（类别/编号）；形似身份证号的值不予显示",
                  "what cannot be resolved: a uscc, or the targeted record as resource/record_id; a value "
                  "that looks like a resident ID number is withheld"),
    "unresolved_reason": ("text", "原因：unknown_enterprise（未知企业）、target_not_found（目标记录不存在）、"
                          "target_not_negative（目标不是失信或负面记录）、outside_population（企业不在当日评价范围）",
                          "why: unknown_enterprise, target_not_found, target_not_negative (the target is not a "
                          "negative record), outside_population (the enterprise is not graded on the date)"),
}

EVALUATION = ("uscc", "enterprise_name", "region_code", "industry_code", "is_leading", "evaluation_date",
              "model_version", "total_score", "grade", "computed_grade", "cap_reason", "basic_score",
              "operations_score", "social_score", "previous_grade", "published_at")
INDICATOR_DETAIL = ("indicator_code", "indicator_name", "indicator_name_en", "level1", "points", "max_points",
                    "under_objection")


@dataclass(frozen=True)
class View:
    name: str
    rows: str  # which rows the reader sees
    columns: tuple[str, ...]  # as the spec table lists them (all of them for a view beyond the spec)
    beyond_spec: str | None = None  # why a view the spec table does not list exists (it lists all others)
    added_columns: tuple[str, ...] = ()  # appended after the spec's columns, beyond the spec
    added_because: str | None = None  # why they were added

    @property
    def all_columns(self) -> tuple[str, ...]:
        """The view's columns in order: the spec's, then those added beyond it."""
        return self.columns + self.added_columns


@dataclass(frozen=True)
class Channel:
    name: str  # the schema, and the value of ``creditplus access --channel``
    role: str  # NOLOGIN group role of its readers
    reader: str
    views: tuple[View, ...]


CHANNELS: tuple[Channel, ...] = (
    Channel("gov_share", "gov_share_reader", "政务共享 government departments", (
        View("enterprise_evaluation", "every graded enterprise", EVALUATION),
        View("indicator_scores", "one per enterprise and indicator",
             ("uscc", "evaluation_date", "indicator_code", "indicator_name", "points", "max_points",
              "under_objection")),
    )),
    Channel("finance", "finance_reader", "信易贷 financial institutions", (
        View("xinyidai_recommendations", "grade A only (第十三条)",
             ("uscc", "enterprise_name", "legal_rep_name", "total_score", "grade", "evaluation_date",
              "published_at")),
        View("enterprise_grades", "every graded enterprise",
             ("uscc", "enterprise_name", "grade", "total_score", "evaluation_date", "published_at")),
    )),
    Channel("association", "association_reader", "行业协会 industry associations", (
        View("enterprise_grades", "every graded enterprise",
             ("uscc", "enterprise_name", "industry_code", "region_code", "grade", "basic_score",
              "operations_score", "social_score", "evaluation_date")),
    )),
    Channel("public_query", "public_reader", "信用中国（黑河） public website and mini-program", (
        View("credit_grades", "every graded enterprise", ("uscc", "enterprise_name", "grade", "evaluation_date")),
    )),
    Channel("enterprise_self", "enterprise_portal", "the graded enterprise after identity verification (第十四条)", (
        View("evaluation_detail",
             "one per indicator of the enterprise whose credential the portal entered in this transaction "
             "(`enterprise_self.enter`, row-level security); none otherwise",
             EVALUATION + INDICATOR_DETAIL),
        View("indicator_explanations",
             "per indicator of the enterprise the portal entered (as evaluation_detail): its base, band or category, "
             "every record that moved its points (and every one a repair or an upheld objection excluded), the "
             "floor or ceiling; per enterprise each listing that caps its grade (indicator_code null); none "
             "otherwise",
             ("uscc", "evaluation_date", "indicator_code", "indicator_name", "item_kind", "item", "resource",
              "record_key", "record_date", "points_moved", "under_objection", "excluded", "excluded_by",
              "published_at"),
             beyond_spec="every point explained (issue 14, 第十四条–第十六条): the records behind each deduction, "
                         "bonus and cap, so the enterprise sees what to object to or repair"),
        View("objections", "one per objection of the enterprise the portal entered (as evaluation_detail); none otherwise",
             ("objection_id", "uscc", "submitted_at", "due_on", "status", "resolved_at", "working_days_used", "overdue"),
             beyond_spec="the enterprise's own objections with their due dates and status (第十四条)"),
    )),
    Channel("regulator", "regulator_reader", "行业主管部门 industry regulators", (
        View("notifications", "one per re-evaluation that changed a result",
             ("notification_id", "uscc", "reason", "old_grade", "new_grade", "old_score", "new_score",
              "evaluation_date", "created_at")),
    )),
    Channel("supply_chain", "supply_chain_reader", "工信局 and the leading enterprises", (
        View("risk_warnings", "one per warning",
             ("leading_uscc", "partner_uscc", "relation", "warning_type", "severity", "detected_on", "detail")),
        View("partner_summary", "one per leading enterprise",
             ("leading_uscc", "partners", "share_weighted_score", "high_risk_partners", "new_warnings",
              "evaluation_date", "published_at"),
             beyond_spec="the per-leading-enterprise summary of supply-chain monitoring for 工信局 (评价细则 第一条)"),
    )),
    Channel("credit_office", "credit_office", "市信用办 the municipal credit office", (
        View("objection_sla", "one per objection",
             ("objection_id", "uscc", "submitted_at", "due_on", "status", "resolved_at", "working_days_used",
              "overdue"),
             added_columns=("deadline_confirmed",),
             added_because="a deadline counted over a year the work calendar does not confirm yet is provisional "
                           "and is marked so (第十四条)"),
        View("unresolved_references", "one per record of the night naming an enterprise or a record the warehouse "
                                      "does not know, or a self-report of an enterprise outside the population",
             ("resource", "record_key", "reference", "unresolved_reason", "detail", "evaluation_date",
              "published_at"),
             beyond_spec="decisions and links that change no score because their target is unknown, listed for the credit office (第十四条–第十六条)"),
    )),
)

BY_NAME: dict[str, Channel] = {c.name: c for c in CHANNELS}
GROUP_ROLES: frozenset[str] = frozenset(c.role for c in CHANNELS)
# Owner of enterprise_self's views: a role without BYPASSRLS, so row-level security applies.
PORTAL_OWNER = "creditplus_portal_owner"
DICTIONARY_PATH = config.PROJECT_ROOT / "docs" / "channels.md"


def channel(name: str) -> Channel:
    """The registry entry for ``name``; a ``UserError`` naming the known channels otherwise."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise UserError(f"unknown channel {name!r}; channels: {', '.join(BY_NAME)}") from None


def data_dictionary() -> str:
    """``docs/channels.md``: every channel, its role, and each view's columns in order."""
    lines = [
        "# Publication channels — data dictionary 数据字典",
        "",
        "Generated from `src/creditplus/channels.py` by `python -m creditplus.channels`; do not edit by hand.",
        "",
        "- Every evaluation view reads one publication, the current one (`audit.publications` where "
        "`is_current`, also `publication.current_publication`), switched for all channels in one transaction "
        "by `creditplus.publish.publish`. 所有渠道同时切换到同一次发布。",
        "- One query always reads one whole publication; a reader whose several queries must agree runs them in one "
        "`REPEATABLE READ` transaction. 多条查询需读取同一次发布时，请在同一个 REPEATABLE READ 事务中执行。",
        "- The views read `publication.*` tables that dbt never rebuilds, with their owner's rights; a reader "
        "needs only its group role. 读者仅需所属渠道的组角色。",
        "- `enterprise_self` shows one enterprise: the one whose credential (`creditplus portal credential`) the "
        "portal's backend entered in the current transaction: `begin; select enterprise_self.enter("
        "enterprise_self.sign_in('<credential>'));` then the query, then `commit`. Without it, or in the next "
        "transaction, it shows no rows; a `creditplus.portal_uscc` set by hand is ignored. "
        "企业门户须在同一事务中以信用办签发的凭证核验身份后查询。",
        "- `enterprise_self.indicator_explanations` explains every point of `evaluation_detail`: per enterprise "
        "and indicator its rows' `points_moved` sum to the indicator's `points`, and the grade's `cap_reason` is "
        "named by a cap row with its record. 每个指标的明细分值之和等于该指标得分。",
        "- `legal_rep_id_no` and a person's `subject_id` (resident ID numbers) appear in no channel; "
        "`legal_rep_name` only in `finance.xinyidai_recommendations`. 身份证号不出现在任何渠道。",
        "",
    ]
    for ch in CHANNELS:
        lines += [f"## `{ch.name}` — {ch.reader}", "", f"Group role: `{ch.role}` (NOLOGIN; "
                  f"`creditplus access grant --channel {ch.name} --user NAME` adds a login user).", ""]
        for view in ch.views:
            added = [f"Added beyond the channels specification: {view.beyond_spec}.", ""] if view.beyond_spec else []
            if view.added_columns:
                added += [f"Columns added beyond the channels specification "
                          f"({', '.join(f'`{col}`' for col in view.added_columns)}): {view.added_because}.", ""]
            lines += [f"### `{ch.name}.{view.name}`", "", f"Rows: {view.rows}.", "", *added,
                      "| # | column | type | 说明 | description |", "|---|---|---|---|---|"]
            lines += [f"| {i} | `{col}` | {COLUMNS[col][0]} | {COLUMNS[col][1]} | {COLUMNS[col][2]}"
                      f"{' (beyond the specification)' if col in view.added_columns else ''} |"
                      for i, col in enumerate(view.all_columns, 1)]
            lines.append("")
    return "\n".join(lines)


if __name__ == "__main__":
    DICTIONARY_PATH.parent.mkdir(exist_ok=True)
    DICTIONARY_PATH.write_text(data_dictionary(), encoding="utf-8")
    print(f"wrote {DICTIONARY_PATH}", file=sys.stderr)
