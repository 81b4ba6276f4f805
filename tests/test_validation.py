"""Record validation against the source contract (credit-platform-api.md, "Valid and refused records")."""
import pytest
from stdnum.cn import uscc as stdnum_uscc

from creditplus.resources import RESOURCES
from creditplus.validation import is_valid_uscc, refusal

USCC = "91231102071503393N"  # valid check character (from the acceptance dataset)


def enterprise(**changes):
    record = {"uscc": USCC, "name": "黑河市北疆粮油有限公司", "established_on": "2015-03-02",
              "reg_status": "active", "updated_at": "2026-11-26T09:00:00+08:00"}
    record.update(changes)
    return {k: v for k, v in record.items() if v is not ...}


def test_check_character_is_computed_by_stdnum():
    assert stdnum_uscc.calc_check_digit(USCC[:17]) == USCC[17]
    assert is_valid_uscc(USCC)
    wrong = USCC[:17] + ("0" if USCC[17] != "0" else "1")
    assert not is_valid_uscc(wrong)
    assert not is_valid_uscc(USCC.lower())
    assert not is_valid_uscc("I" + USCC[1:])  # I, O, S, V, Z are not in the alphabet
    assert not is_valid_uscc(None)


def test_valid_record_with_unknown_extra_fields_passes():
    assert refusal("enterprises", enterprise(extra_field={"kept": True}, reg_capital_wan="0.00")) is None


@pytest.mark.parametrize("changes, field", [
    ({"uscc": USCC[:17] + "0"}, "uscc"),
    ({"reg_status": "bankrupt"}, "reg_status"),
    ({"reg_status": ...}, "reg_status"),
    ({"name": ""}, "name"),
    ({"name": None}, "name"),
    ({"established_on": "2014-02-30"}, "established_on"),
    ({"established_on": "20140228"}, "established_on"),
    ({"reg_capital_wan": "-100.00"}, "reg_capital_wan"),
    ({"reg_capital_wan": 100}, "reg_capital_wan"),
    ({"is_leading": "true"}, "is_leading"),
    ({"updated_at": "2026-11-26T09:00:00"}, "updated_at"),
    ({"updated_at": ...}, "updated_at"),
    ({"legal_rep_name": 5}, "legal_rep_name"),
])
def test_refusal_names_the_field(changes, field):
    reason = refusal("enterprises", enterprise(**changes))
    assert reason is not None and f"field {field} " in reason


def test_not_an_object_is_refused():
    assert "JSON object" in refusal("penalties", ["a", "list"])


@pytest.mark.parametrize("resource, record, ok", [
    ("financials", {"uscc": USCC, "year": 2025, "net_profit_wan": "-50.00", "employees": 3}, True),
    ("financials", {"uscc": USCC, "year": "2025"}, False),
    ("financials", {"uscc": USCC, "year": 2025, "employees": -1}, False),
    ("financials", {"uscc": USCC, "year": True}, False),
    ("social_insurance", {"uscc": USCC, "month": "2025-13", "arrears": False}, False),
    ("social_insurance", {"uscc": USCC, "month": "2025-12", "arrears": False}, True),
    ("dishonest_debtors", {"record_id": "D1", "subject_type": "person", "subject_id": "230102199001011234",
                           "listed_on": "2025-01-01", "status": "active"}, True),
    ("dishonest_debtors", {"record_id": "D1", "subject_type": "enterprise", "subject_id": "230102199001011234",
                           "listed_on": "2025-01-01", "status": "active"}, False),
    ("objections", {"objection_id": "O1", "uscc": USCC, "target_resource": "penalties", "target_record_id": "P1",
                    "submitted_at": "2026-11-20T10:00:00Z", "status": "upheld", "resolved_at": "yesterday"}, False),
    ("objections", {"objection_id": "O1", "uscc": USCC, "target_resource": "penalties", "target_record_id": "P1",
                    "submitted_at": "2026-11-20T10:00:00Z", "status": "upheld", "resolved_at": None}, True),
    ("self_reports", {"report_id": "S1", "uscc": USCC, "kind": "honor", "submitted_on": "2026-01-01",
                      "status": "confirmed", "payload": {"level": "national", "awarded_on": "2025-02-29"}}, False),
    ("self_reports", {"report_id": "S1", "uscc": USCC, "kind": "donation", "submitted_on": "2026-01-01",
                      "status": "pending", "payload": {"amount_yuan": "100.00", "donated_on": "2025-02-28"}}, True),
    ("supply_chain_links", {"link_id": "L1", "leading_uscc": USCC, "partner_uscc": USCC, "relation": "upstream",
                            "valid_from": "2024-01-01", "share_pct": "12.5"}, True),
])
def test_resource_rules(resource, record, ok):
    record = {**record, "updated_at": "2026-11-26T09:00:00+08:00"}
    assert (refusal(resource, record) is None) is ok, refusal(resource, record)


def test_registry_is_complete_and_consistent():
    assert len(RESOURCES) == 18
    for res in RESOURCES:
        for key in res.key:
            assert res.field_map[key].required, (res.name, key)
