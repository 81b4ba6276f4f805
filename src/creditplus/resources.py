"""The one registry of credit-platform resources (spec: credit-platform-api.md).

Everything per-resource (raw tables, validation, extraction, the simulator, dbt
sources) is driven by ``RESOURCES``; adding a resource touches only this table.
"""
from __future__ import annotations

from dataclasses import dataclass

# Field kinds understood by ``creditplus.validation``.
TEXT, INT, COUNT, BOOL, DATE, MONTH, TIMESTAMP = "text", "int", "count", "bool", "date", "month", "timestamp"
MONEY, SIGNED_MONEY, USCC, OBJECT, SUBJECT_ID = "money", "signed_money", "uscc", "object", "subject_id"

LISTING_STATUS = ("active", "revoked")


@dataclass(frozen=True)
class Field:
    name: str
    kind: str = TEXT
    required: bool = False
    values: tuple[str, ...] = ()  # enum domain; empty = any value of the kind


@dataclass(frozen=True)
class Resource:
    name: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    negative: bool = False  # a negative record that repairs and objections can exclude

    @property
    def field_map(self) -> dict[str, Field]:
        return {f.name: f for f in self.fields}


def _enum(name: str, *values: str, required: bool = True) -> Field:
    return Field(name, TEXT, required, tuple(values))


def _req(name: str, kind: str = TEXT) -> Field:
    return Field(name, kind, True)


def _opt(name: str, kind: str = TEXT) -> Field:
    return Field(name, kind, False)


RESOURCES: tuple[Resource, ...] = (
    Resource("enterprises", ("uscc",), (
        _req("uscc", USCC), _req("name"), _req("established_on", DATE),
        _enum("reg_status", "active", "suspended", "moved_out", "revoked", "cancelled"),
        _opt("legal_rep_name"), _opt("legal_rep_id_no"), _opt("reg_capital_wan", MONEY),
        _opt("enterprise_type"), _opt("industry_code"), _opt("region_code"), _opt("is_leading", BOOL),
    )),
    Resource("financials", ("uscc", "year"), (
        _req("uscc", USCC), _req("year", INT), _opt("revenue_wan", MONEY),
        _opt("net_profit_wan", SIGNED_MONEY), _opt("total_assets_wan", MONEY),
        _opt("total_liabilities_wan", MONEY), _opt("tax_paid_wan", MONEY), _opt("employees", COUNT),
    )),
    Resource("tax_ratings", ("uscc", "year"), (
        _req("uscc", USCC), _req("year", INT), _enum("rating", "A", "B", "M", "C", "D"),
    )),
    Resource("environmental_ratings", ("uscc", "year"), (
        _req("uscc", USCC), _req("year", INT), _enum("rating", "green", "blue", "yellow", "red", "black"),
    )),
    Resource("penalties", ("record_id",), (
        _req("record_id"), _req("uscc", USCC), _req("decided_on", DATE),
        _enum("severity", "minor", "general", "severe"), _req("publicity_until", DATE),
        _enum("status", *LISTING_STATUS), _opt("decision_no"), _opt("authority"), _opt("amount_yuan", MONEY),
    ), negative=True),
    Resource("dishonest_debtors", ("record_id",), (
        _req("record_id"), _enum("subject_type", "enterprise", "person"), _req("subject_id", SUBJECT_ID),
        _req("listed_on", DATE), _enum("status", *LISTING_STATUS), _opt("court"), _opt("case_no"),
        _opt("removed_on", DATE),
    ), negative=True),
    Resource("abnormal_operations", ("record_id",), (
        _req("record_id"), _req("uscc", USCC), _req("listed_on", DATE), _enum("status", *LISTING_STATUS),
        _opt("reason"), _opt("removed_on", DATE),
    ), negative=True),
    Resource("serious_dishonesty", ("record_id",), (
        _req("record_id"), _req("uscc", USCC), _req("listed_on", DATE), _enum("status", *LISTING_STATUS),
        _opt("category"), _opt("removed_on", DATE),
    ), negative=True),
    Resource("performance_records", ("record_id",), (
        _req("record_id"), _req("uscc", USCC), _enum("kind", "loan_overdue", "contract_breach", "utility_arrears"),
        _req("occurred_on", DATE), _enum("status", *LISTING_STATUS), _opt("amount_yuan", MONEY),
        _opt("settled_on", DATE),
    ), negative=True),
    Resource("social_insurance", ("uscc", "month"), (
        _req("uscc", USCC), _req("month", MONTH), _req("arrears", BOOL), _opt("insured_count", COUNT),
        _opt("arrears_amount_yuan", MONEY),
    )),
    Resource("safety_accidents", ("record_id",), (
        _req("record_id"), _req("uscc", USCC), _req("occurred_on", DATE),
        _enum("level", "general", "major", "serious", "especially_serious"), _enum("status", *LISTING_STATUS),
        _opt("deaths", COUNT),
    ), negative=True),
    Resource("honors", ("record_id",), (
        _req("record_id"), _req("uscc", USCC), _enum("level", "national", "provincial", "municipal"),
        _req("awarded_on", DATE), _opt("title"), _opt("authority"), _opt("valid_until", DATE),
    )),
    Resource("donations", ("record_id",), (
        _req("record_id"), _req("uscc", USCC), _req("donated_on", DATE), _opt("amount_yuan", MONEY),
        _opt("recipient"),
    )),
    Resource("patents", ("record_id",), (
        _req("record_id"), _req("uscc", USCC), _enum("patent_type", "invention", "utility_model", "design"),
        _req("granted_on", DATE), _opt("title"),
    )),
    Resource("self_reports", ("report_id",), (
        _req("report_id"), _req("uscc", USCC), _enum("kind", "honor", "donation", "patent"),
        _req("payload", OBJECT), _req("submitted_on", DATE), _enum("status", "pending", "confirmed", "rejected"),
        _opt("reviewed_on", DATE),
    )),
    Resource("credit_repairs", ("repair_id",), (
        _req("repair_id"), _req("uscc", USCC), _req("target_resource"), _req("target_record_id"),
        _req("applied_on", DATE), _enum("status", "pending", "approved", "rejected"), _opt("decided_on", DATE),
    )),
    Resource("objections", ("objection_id",), (
        _req("objection_id"), _req("uscc", USCC), _req("target_resource"), _req("target_record_id"),
        _req("submitted_at", TIMESTAMP), _enum("status", "submitted", "processing", "upheld", "rejected"),
        _opt("resolved_at", TIMESTAMP), _opt("note"),
    )),
    Resource("supply_chain_links", ("link_id",), (
        _req("link_id"), _req("leading_uscc", USCC), _req("partner_uscc", USCC),
        _enum("relation", "upstream", "downstream"), _req("valid_from", DATE), _opt("share_pct", MONEY),
        _opt("valid_to", DATE),
    )),
)

# Fields of a self-report's ``payload`` per kind (counted as a record of that kind).
SELF_REPORT_PAYLOADS: dict[str, tuple[Field, ...]] = {
    "honor": (_enum("level", "national", "provincial", "municipal"), _req("awarded_on", DATE),
              _opt("title"), _opt("valid_until", DATE)),
    "donation": (_req("amount_yuan", MONEY), _req("donated_on", DATE)),
    "patent": (_enum("patent_type", "invention", "utility_model", "design"), _req("granted_on", DATE),
               _opt("title")),
}

BY_NAME: dict[str, Resource] = {r.name: r for r in RESOURCES}
NEGATIVE_RESOURCES: tuple[str, ...] = tuple(r.name for r in RESOURCES if r.negative)


def resource(name: str) -> Resource:
    """The registry entry for ``name``; a clear error for an unknown resource."""
    try:
        return BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown resource {name!r}; known: {', '.join(BY_NAME)}") from None
