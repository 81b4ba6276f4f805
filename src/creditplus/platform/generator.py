"""Deterministic dataset generator: ``creditplus platform generate`` (spec: credit-platform-api.md).

Writes one ``<resource>.jsonl`` per registry resource for a synthetic Heihe City: N
enterprises with several years of record versions ending on ``--end-date`` 23:59 +08:00.
One seeded RNG drawn in a fixed order makes the output byte-identical for the same
arguments. Each enterprise has a hidden quality ``q`` (leading enterprises higher) that
shifts its ratings, finances and the odds of negative records, which gives a grade spread
of mostly C–B under scoring-model-v1. Every record written is valid; malformed ones come
only from the server's fault injector. Progress (the command line's bar) is reported every
``PROGRESS_BATCH`` enterprises, outside the RNG's draws: it changes no byte of the output.
"""
from __future__ import annotations

import datetime as dt
import json
import math
import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from stdnum.cn import uscc as stdnum_uscc

from creditplus import resources as R

# Raised whenever the same arguments generate different data: cached datasets are named by it.
VERSION = 2
PROGRESS_BATCH = 250  # enterprises between two progress reports (about 0.1 s)
from creditplus.config import CST
from creditplus.errors import UserError
from creditplus.progress import bar as progress_bar

REGIONS = {"231102": "爱辉区", "231123": "逊克县", "231124": "孙吴县", "231181": "北安市", "231182": "五大连池市", "231183": "嫩江市"}
# GB/T 4754 division → words used in names; Heihe: farming, food, border trade, logistics.
INDUSTRIES = (("A01", "农业发展"), ("A03", "畜牧养殖"), ("C13", "粮油加工"), ("C14", "食品"), ("C15", "酒业"),
              ("C20", "木业"), ("C30", "建材"), ("C34", "机械制造"), ("C39", "电子科技"), ("D44", "热电"),
              ("E47", "建筑工程"), ("F51", "商贸"), ("F51", "对俄贸易"), ("F52", "超市"), ("G54", "物流"),
              ("H61", "酒店管理"), ("H62", "餐饮"), ("I65", "信息技术"), ("K70", "房地产开发"), ("M75", "农业科技"))
POLLUTING = {"A03", "C13", "C14", "C15", "C20", "C30", "C34", "C39", "D44", "E47"}
TRADE_NAMES = tuple("龙江 黑土 恒泰 鑫达 北疆 兴安 瑷珲 金穗 寒地 华晟 远航 宏盛 森润 丰源 嫩江 北纬 冰城 曙光 瑞丰 隆基 "
                    "中俄 边城 沃野 天成 宝泉 众鑫 大兴 永盛 金龙 益农 鸿运 百川 德润 泰和 华夏 佳禾 润泽 长青 雪原 顺达".split())
FORMS = (("有限责任公司", "有限公司", "91", 0.70), ("股份有限公司", "股份有限公司", "91", 0.08),
         ("个人独资企业", "", "91", 0.07), ("合伙企业", "（有限合伙）", "91", 0.03), ("农民专业合作社", "农民专业合作社", "93", 0.12))
SURNAMES = "王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯于董萧程曹袁邓许傅沈曾彭吕苏卢蒋蔡贾丁魏"
GIVEN = "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超兰霞平刚桂志海峰建国红玉春"
COURTS = ("黑河市中级人民法院", "黑河市爱辉区人民法院", "北安市人民法院", "嫩江市人民法院", "五大连池市人民法院")
AUTHORITIES = ("黑河市市场监督管理局", "黑河市生态环境局", "黑河市应急管理局", "国家税务总局黑河市税务局", "黑河市交通运输局")
ABNORMAL_REASONS = ("未按照规定的期限公示年度报告", "通过登记的住所或者经营场所无法联系", "公示企业信息隐瞒真实情况、弄虚作假")
SERIOUS_CATEGORIES = ("拖欠农民工工资", "严重违法失信超限运输", "重大税收违法", "食品安全严重违法")
HONORS = (("national", "全国守合同重信用企业", "国家市场监督管理总局"),
          ("provincial", "黑龙江省农业产业化重点龙头企业", "黑龙江省农业农村厅"),
          ("provincial", "黑龙江省专精特新中小企业", "黑龙江省工业和信息化厅"),
          ("municipal", "黑河市诚信经营示范单位", "黑河市人民政府"),
          ("municipal", "黑河市纳税信用示范企业", "国家税务总局黑河市税务局"))
PATENT_TITLES = ("一种寒地大豆高效脱壳方法", "一种低温环境下的粮食烘干装置", "一种对俄跨境物流追踪系统",
                 "一种林下菌类栽培架", "一种节能型供热锅炉", "一种食品包装封口装置")
RECIPIENTS = ("黑河市慈善总会", "黑河市红十字会", "黑龙江省青少年发展基金会", "黑河市教育基金会")

_RIC_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_ORG_WEIGHTS = (3, 7, 9, 10, 5, 8, 4, 2)
_encode = json.JSONEncoder(ensure_ascii=False).encode


def resident_id(rng: random.Random, region: str) -> str:
    """A GB 11643 resident ID (birth 1955–1995) with its ISO 7064 check character."""
    born = dt.date(1955, 1, 1) + dt.timedelta(days=rng.randrange(40 * 365))
    body = f"{region}{born:%Y%m%d}{rng.randrange(1000):03d}"
    return body + "10X98765432"[sum(w * int(c) for w, c in zip(_RIC_WEIGHTS, body)) % 11]


def make_uscc(prefix: str, region: str, serial: int) -> str:
    """GB 32100 code: prefix, region, a GB 11714 organisation code made from ``serial``, check."""
    org = f"{(serial * 36_481_973 + 10_000_019) % 100_000_000:08d}"
    org_check = 11 - sum(w * int(c) for w, c in zip(_ORG_WEIGHTS, org)) % 11
    body = prefix + region + org + {10: "X", 11: "0"}.get(org_check, str(org_check))
    return body + stdnum_uscc.calc_check_digit(body)


class Writer:
    """Open ``<resource>.jsonl`` files, per-resource id counters, and the calendar."""

    def __init__(self, out: Path, end: dt.date, rng: random.Random):
        out.mkdir(parents=True, exist_ok=True)
        self.files = {r.name: (out / f"{r.name}.jsonl").open("w", encoding="utf-8", newline="\n") for r in R.RESOURCES}
        self.counts = dict.fromkeys(self.files, 0)
        self.ids: dict[str, int] = {}
        self.end = end.toordinal()
        self.rng = rng

    def write(self, resource: str, record: dict, day: int) -> bool:
        """Write ``record`` stamped at a time of ``day`` (an ordinal); days after the end are not written."""
        if day > self.end:
            return False
        seconds = self.rng.randrange(8 * 3600, 20 * 3600)
        record["updated_at"] = f"{iso(day)}T{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}+08:00"
        self.files[resource].write(_encode(record) + "\n")
        self.counts[resource] += 1
        return True

    def next_id(self, prefix: str) -> str:
        self.ids[prefix] = self.ids.get(prefix, 0) + 1
        return f"{prefix}-{self.ids[prefix]:07d}"

    def close(self) -> None:
        for f in self.files.values():
            f.close()


def iso(day: int) -> str:
    return dt.date.fromordinal(day).isoformat()


def money(value: float) -> str:
    return f"{value:.2f}"


def years_before(day: int, years: int) -> int:
    d = dt.date.fromordinal(day)
    return d.replace(year=d.year - years, day=28 if (d.month, d.day) == (2, 29) else d.day).toordinal()


class City:
    """The generated population and the generation steps, in a fixed order."""

    def __init__(self, n: int, seed: int, end: dt.date, years: int, out: Path):
        self.rng = random.Random(seed)
        self.w = Writer(out, end, self.rng)
        self.end, self.end_date = end.toordinal(), end
        self.start = years_before(self.end, years)
        self.enterprises: list[tuple[str, str, float, bool, int, str]] = []  # uscc, region, q, leading, est, rep id
        self.n = n

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def day_between(self, first: int, last: int) -> int:
        return self.rng.randint(first, max(first, last))

    def run(self, progress: Callable[[int, int], None] | None = None) -> None:
        for serial in range(self.n):
            self.enterprise(serial)
            if progress and (serial + 1) % PROGRESS_BATCH == 0:
                progress(serial + 1, self.n)
        self.person_debtors()
        self.supply_chains()
        self.w.close()
        if progress:
            progress(self.n, self.n)

    def enterprise(self, serial: int) -> None:
        rng = self.rng
        region = rng.choice(tuple(REGIONS))
        code, word = rng.choice(INDUSTRIES)
        form, suffix, prefix, _ = rng.choices(FORMS, weights=[f[3] for f in FORMS])[0]
        leading = serial % 97 == 13 and form != "个人独资企业"
        q = rng.gauss(1.2, 0.7) if leading else rng.gauss(0.55, 0.45)
        uscc = make_uscc(prefix, region, serial)
        # 7 % are founded within the history; those of its last year have no annual report yet (grade E).
        est = self.day_between(self.end - 30 * 365, self.start) if self.chance(0.93) else self.day_between(self.start, self.end)
        rep_id = resident_id(rng, region)
        self.enterprises.append((uscc, region, q, leading, est, rep_id))
        capital = math.exp(rng.gauss(6.2 + (2.5 if leading else 0) + 0.3 * q, 1.3))
        record = {"uscc": uscc, "name": f"黑河{REGIONS[region]}{rng.choice(TRADE_NAMES)}{word}{suffix or '商行'}",
                  "legal_rep_name": rng.choice(SURNAMES) + rng.choice(GIVEN) + (rng.choice(GIVEN) if self.chance(0.6) else ""),
                  "legal_rep_id_no": rep_id, "reg_capital_wan": money(capital), "established_on": iso(est),
                  "enterprise_type": form, "industry_code": code, "region_code": region,
                  "reg_status": rng.choices(("active", "suspended", "moved_out", "cancelled", "revoked"), (93, 2, 2, 2, 1))[0],
                  "is_leading": leading}
        first = max(est, self.start + rng.randrange(60))
        self.w.write("enterprises", record, first)
        if self.chance(0.15):  # a later change: capital increase or a status change
            if self.chance(0.6):
                record["reg_capital_wan"] = money(capital * rng.uniform(1.2, 3))
            else:
                record["reg_status"] = rng.choice(("suspended", "moved_out", "cancelled", "active"))
            self.w.write("enterprises", dict(record), self.day_between(first + 1, self.end + 200))
        if record["reg_status"] in ("cancelled", "revoked") and self.chance(0.5):
            return  # a closed enterprise with no further history
        self.annual(uscc, q, leading, est, code)
        self.social_insurance(uscc, q, leading, est)
        self.events(uscc, q, leading, est)

    def annual(self, uscc: str, q: float, leading: bool, est: int, industry: str) -> None:
        """Financials (last 4 years), tax and environmental ratings, published the next spring."""
        rng, end_year = self.rng, self.end_date.year
        revenue = math.exp(rng.gauss(8.3 + (2.5 if leading else 0) + 0.4 * q, 1.2))
        reports = self.chance(0.98 if not leading else 1.0)
        rated_env = industry in POLLUTING or leading
        for year in range(end_year - 4, end_year):
            if dt.date(year, 12, 31).toordinal() < est:
                continue
            revenue *= math.exp(rng.gauss(0.04 + 0.05 * q, 0.18))
            if reports:
                margin = rng.gauss(0.05 + 0.03 * q, 0.06)
                assets = revenue * rng.uniform(0.6, 1.6)
                debt = min(max(rng.gauss(0.5 - 0.1 * q, 0.15), 0.05), 1.3)
                employees = int(revenue / rng.uniform(30, 90)) + rng.randrange(3, 12)
                record = {"uscc": uscc, "year": year, "revenue_wan": money(revenue),
                          "net_profit_wan": money(revenue * margin), "total_assets_wan": money(assets),
                          "total_liabilities_wan": money(assets * debt),
                          "tax_paid_wan": money(revenue * rng.uniform(0.02, 0.06)), "employees": employees}
                day = self.day_between(dt.date(year + 1, 1, 15).toordinal(), dt.date(year + 1, 6, 30).toordinal())
                if self.w.write("financials", record, day) and self.chance(0.05):  # a corrected report
                    record["revenue_wan"] = money(revenue * rng.uniform(0.95, 1.05))
                    self.w.write("financials", dict(record), day + rng.randrange(1, 120))
            if self.chance(0.93 if not leading else 1.0):
                rating = "ABMCD"[sum(q + rng.gauss(0, 0.7) < t for t in (0.4, -0.9, -1.6, -2.3))]
                self.w.write("tax_ratings", {"uscc": uscc, "year": year, "rating": rating},
                             self.day_between(dt.date(year + 1, 4, 1).toordinal(), dt.date(year + 1, 4, 30).toordinal()))
            if rated_env:
                rating = ("green", "blue", "yellow", "red", "black")[sum(q + rng.gauss(0, 0.7) < t for t in (0.8, -0.5, -1.5, -2.2))]
                self.w.write("environmental_ratings", {"uscc": uscc, "year": year, "rating": rating},
                             self.day_between(dt.date(year + 1, 6, 1).toordinal(), dt.date(year + 1, 7, 15).toordinal()))

    def social_insurance(self, uscc: str, q: float, leading: bool, est: int) -> None:
        """The last 14 months, each published in the first four weeks of the next month."""
        if not self.chance(0.97 if leading else 0.8):
            return
        rng = self.rng
        insured = max(1, int(math.exp(rng.gauss(2.5 + (2.5 if leading else 0) + 0.3 * q, 0.9))))
        arrears_rate = 0.0 if not self.chance(0.12 * math.exp(-q)) else rng.uniform(0.1, 0.7)
        year, month = self.end_date.year, self.end_date.month
        for back in range(14, 0, -1):
            y, m = divmod(year * 12 + month - 1 - back, 12)
            published = dt.date(y + (m + 1) // 12, (m + 1) % 12 + 1, 1).toordinal() + rng.randrange(28)
            if dt.date(y, m + 1, 28).toordinal() < est:
                continue
            arrears = self.chance(arrears_rate)
            self.w.write("social_insurance", {"uscc": uscc, "month": f"{y}-{m + 1:02d}", "insured_count": insured,
                                              "arrears": arrears,
                                              "arrears_amount_yuan": money(insured * rng.uniform(800, 1500) if arrears else 0)},
                         published)

    def events(self, uscc: str, q: float, leading: bool, est: int) -> None:
        """Sparse records over the history: listings, penalties, honours, and what follows them."""
        rng, w = self.rng, self.w
        bad = 0.7 * math.exp(-0.8 * q)
        first = max(est, self.start)
        negatives: list[tuple[str, str, int]] = []  # (resource, record_id, day) for repairs and objections

        def when() -> int:
            return self.day_between(first, self.end)

        for _ in range(self.count(0.12 * bad)):
            day = when()
            severity = rng.choices(("minor", "general", "severe"), (50, 40, 10))[0]
            record = {"record_id": w.next_id("PEN"), "uscc": uscc, "decision_no": f"黑市监罚字〔{iso(day)[:4]}〕{rng.randrange(1, 999)}号",
                      "authority": rng.choice(AUTHORITIES), "decided_on": iso(day), "severity": severity,
                      "amount_yuan": money(rng.uniform(500, 200000)),
                      "publicity_until": iso(day + {"minor": 90, "general": 365, "severe": 1095}[severity]), "status": "active"}
            w.write("penalties", record, day + rng.randrange(1, 10))
            negatives.append(("penalties", record["record_id"], day))
            if self.chance(0.03):
                w.write("penalties", {**record, "status": "revoked"}, day + rng.randrange(20, 200))
        for resource, prefix, rate, removal, extra in (
                ("abnormal_operations", "ABN", 0.05, 0.6, lambda: {"reason": rng.choice(ABNORMAL_REASONS)}),
                ("serious_dishonesty", "SD", 0.004, 0.3, lambda: {"category": rng.choice(SERIOUS_CATEGORIES)}),
                ("dishonest_debtors", "DD", 0.02, 0.5, lambda: self.debtor(uscc, "enterprise"))):
            for _ in range(self.count(rate * bad)):
                day = when()
                record = {"record_id": w.next_id(prefix), **({} if resource == "dishonest_debtors" else {"uscc": uscc}),
                          **extra(), "listed_on": iso(day), "removed_on": None, "status": "active"}
                w.write(resource, record, day + rng.randrange(0, 5))
                negatives.append((resource, record["record_id"], day))
                if self.chance(removal):
                    removed = day + rng.randrange(30, 900)
                    w.write(resource, {**record, "removed_on": iso(removed)}, removed)
        for _ in range(self.count(0.07 * bad)):
            day = when()
            record = {"record_id": w.next_id("PERF"), "uscc": uscc,
                      "kind": rng.choices(("loan_overdue", "contract_breach", "utility_arrears"), (3, 3, 4))[0],
                      "occurred_on": iso(day), "amount_yuan": money(rng.uniform(2000, 2_000_000)), "settled_on": None,
                      "status": "active"}
            w.write("performance_records", record, day + rng.randrange(3, 15))
            negatives.append(("performance_records", record["record_id"], day))
            if self.chance(0.5):
                settled = day + rng.randrange(20, 400)
                w.write("performance_records", {**record, "settled_on": iso(settled)}, settled + 2)
        for _ in range(self.count(0.015 * bad)):
            day = when()
            level = rng.choices(("general", "major", "serious", "especially_serious"), (90, 8, 1.5, 0.5))[0]
            record = {"record_id": w.next_id("SA"), "uscc": uscc, "occurred_on": iso(day), "level": level,
                      "deaths": rng.randrange(0, 3) if level == "general" else rng.randrange(3, 12), "status": "active"}
            w.write("safety_accidents", record, day + 1)
            negatives.append(("safety_accidents", record["record_id"], day))
        good = math.exp(0.6 * q) * (4 if leading else 1)
        for _ in range(self.count(0.03 * good)):
            level, title, authority = rng.choice(HONORS)
            day = when()
            w.write("honors", {"record_id": w.next_id("HON"), "uscc": uscc, "level": level, "title": title,
                               "authority": authority, "awarded_on": iso(day),
                               "valid_until": None if self.chance(0.6) else iso(day + 3 * 365)}, day + rng.randrange(3, 20))
        for _ in range(self.count(0.06 * good)):
            day = when()
            w.write("donations", {"record_id": w.next_id("DON"), "uscc": uscc, "donated_on": iso(day),
                                  "amount_yuan": money(math.exp(rng.gauss(9.5 + (2 if leading else 0), 1.3))),
                                  "recipient": rng.choice(RECIPIENTS)}, day + rng.randrange(2, 15))
        for _ in range(self.count(0.15 * good)):
            day = when()
            w.write("patents", {"record_id": w.next_id("PAT"), "uscc": uscc,
                                "patent_type": rng.choices(("invention", "utility_model", "design"), (2, 5, 3))[0],
                                "title": rng.choice(PATENT_TITLES), "granted_on": iso(day)}, day + rng.randrange(5, 30))
        if self.chance(0.03 * good):
            self.self_report(uscc, when())
        for resource, record_id, day in negatives:
            if self.chance(0.15):
                self.repair(uscc, resource, record_id, day + rng.randrange(30, 400))
            elif self.chance(0.12):
                self.objection(uscc, resource, record_id, day + rng.randrange(5, 60))

    def count(self, mean: float) -> int:
        """A Poisson-distributed count with the given mean (Knuth; means here are small)."""
        limit, k, p = math.exp(-mean), 0, self.rng.random()
        while p > limit:
            k += 1
            p *= self.rng.random()
        return k

    def debtor(self, subject_id: str, subject_type: str) -> dict:
        year = self.end_date.year - self.rng.randrange(4)
        return {"subject_type": subject_type, "subject_id": subject_id, "court": self.rng.choice(COURTS),
                "case_no": f"（{year}）黑11执{self.rng.randrange(1, 3000)}号"}

    def self_report(self, uscc: str, day: int) -> None:
        rng = self.rng
        kind = rng.choice(("honor", "donation", "patent"))
        payload = {"honor": lambda: {"level": rng.choice(("provincial", "municipal")), "awarded_on": iso(day - 20),
                                     "title": "黑河市诚信经营示范单位"},
                   "donation": lambda: {"amount_yuan": money(rng.uniform(5000, 300000)), "donated_on": iso(day - 10)},
                   "patent": lambda: {"patent_type": "utility_model", "granted_on": iso(day - 30),
                                      "title": rng.choice(PATENT_TITLES)}}[kind]()
        record = {"report_id": self.w.next_id("SR"), "uscc": uscc, "kind": kind, "payload": payload,
                  "submitted_on": iso(day), "status": "pending", "reviewed_on": None}
        self.w.write("self_reports", record, day)
        reviewed = day + rng.randrange(5, 40)
        self.w.write("self_reports", {**record, "status": "confirmed" if self.chance(0.75) else "rejected",
                                      "reviewed_on": iso(reviewed)}, reviewed)

    def repair(self, uscc: str, resource: str, record_id: str, applied: int) -> None:
        record = {"repair_id": self.w.next_id("CR"), "uscc": uscc, "target_resource": resource,
                  "target_record_id": record_id, "applied_on": iso(applied), "status": "pending", "decided_on": None}
        if self.w.write("credit_repairs", record, applied):
            decided = applied + self.rng.randrange(7, 60)
            self.w.write("credit_repairs", {**record, "status": "approved" if self.chance(0.7) else "rejected",
                                            "decided_on": iso(decided)}, decided)

    def objection(self, uscc: str, resource: str, record_id: str, day: int) -> None:
        submitted = f"{iso(day)}T07:{self.rng.randrange(60):02d}:00+08:00"
        record = {"objection_id": self.w.next_id("OBJ"), "uscc": uscc, "target_resource": resource,
                  "target_record_id": record_id, "submitted_at": submitted, "status": "submitted", "resolved_at": None,
                  "note": "企业对该记录提出异议"}
        if self.w.write("objections", record, day) and self.w.write("objections", {**record, "status": "processing"}, day + 2):
            resolved = day + self.rng.randrange(5, 30)
            self.w.write("objections", {**record, "status": "upheld" if self.chance(0.3) else "rejected",
                                        "resolved_at": f"{iso(resolved)}T16:30:00+08:00"}, resolved)

    def person_debtors(self) -> None:
        """Some legal representatives are listed as dishonest judgment debtors themselves."""
        for uscc, region, q, leading, est, rep_id in self.enterprises:
            if self.chance(0.015 * math.exp(-0.5 * q)):
                day = self.day_between(max(est, self.start), self.end)
                record = {"record_id": self.w.next_id("DD"), **self.debtor(rep_id, "person"), "listed_on": iso(day),
                          "removed_on": None, "status": "active"}
                self.w.write("dishonest_debtors", record, day + 1)
                if self.chance(0.5):
                    removed = day + self.rng.randrange(60, 700)
                    self.w.write("dishonest_debtors", {**record, "removed_on": iso(removed)}, removed)

    def supply_chains(self) -> None:
        """Each leading enterprise buys from and sells to 10–200 partners; shares sum below 100 %."""
        rng, population = self.rng, self.enterprises
        for uscc, region, q, leading, est, rep_id in population:
            if not leading or len(population) < 2:
                continue
            wanted = rng.randint(10, 200)
            partners = [p for p in rng.sample(population, min(len(population), wanted + 1)) if p[0] != uscc][:wanted]
            for relation in ("upstream", "downstream"):
                side = [p for i, p in enumerate(partners) if (i % 2 == 0) == (relation == "upstream")]
                weights = [rng.paretovariate(1.5) for _ in side]
                total = sum(weights) / rng.uniform(0.6, 0.95)
                for partner, weight in zip(side, weights):
                    since = self.day_between(max(est, partner[4], self.start), self.end)
                    record = {"link_id": self.w.next_id("SCL"), "leading_uscc": uscc, "partner_uscc": partner[0],
                              "relation": relation, "share_pct": f"{math.floor(weight / total * 10000) / 100:.2f}",
                              "valid_from": iso(since), "valid_to": None}
                    self.w.write("supply_chain_links", record, since)
                    if self.chance(0.1):
                        ended = since + rng.randrange(90, 1000)
                        self.w.write("supply_chain_links", {**record, "valid_to": iso(ended)}, ended)


def generate(out: Path, enterprises: int, seed: int, end: dt.date, years: int, *,
             progress: bool | Callable[[int, int], None] = False) -> dict[str, int]:
    """Write the dataset; returns the record versions written per resource.

    ``progress``: off for library calls; True shows a bar on stderr when it is a terminal (nothing
    otherwise); a function is called as ``progress(enterprises done, enterprises)`` every
    ``PROGRESS_BATCH`` enterprises and once at the end (after the supply chains)."""
    if enterprises < 1 or years < 1:
        raise UserError(f"--enterprises and --years must be at least 1; got {enterprises} and {years}")
    city = City(enterprises, seed, end, years, Path(out))
    if progress is True:
        with progress_bar(f"generating {enterprises:,} enterprises", remaining=True) as update:
            city.run(update)
    else:
        city.run(progress or None)
    return city.w.counts


def main(args) -> int:
    """``creditplus platform generate``."""
    end = args.end_date or (dt.datetime.now(CST).date() - dt.timedelta(days=1))
    started = time.monotonic()
    try:
        counts = generate(args.out, args.enterprises, args.seed, end, args.years, progress=True)
    except OSError as exc:
        raise UserError(f"cannot write the dataset to {args.out}: {exc.strerror}; choose a writable directory") from None
    print(f"creditplus platform: wrote {sum(counts.values())} record versions for {args.enterprises} enterprises "
          f"through {end} to {args.out} in {time.monotonic() - started:.1f} s", file=sys.stderr)
    return 0
