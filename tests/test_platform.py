"""The credit platform simulator over real HTTP on loopback (spec: credit-platform-api.md)."""
from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest

from conftest import BASIC_CASE
from creditplus import cli, validation
from creditplus.platform.server import running, updated_instant
from creditplus.resources import RESOURCES
from creditplus.resources import resource as registry_entry

ACCEPTANCE = BASIC_CASE / "dataset"
AUTH = {"Authorization": "Bearer test-token"}
P = "/api/v1/resources/penalties"


def penalty(record_id: str, updated_at: str, **extra) -> dict:
    return {"record_id": record_id, "uscc": "91231124793100094L", "decided_on": "2026-11-01", "severity": "general",
            "publicity_until": "2027-11-01", "status": "active", "updated_at": updated_at, **extra}


def write_dataset(folder: Path, **lines: list) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for resource, records in lines.items():
        text = "".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in records)
        (folder / f"{resource}.jsonl").write_text(text, encoding="utf-8")
    return folder


def fetch_all(client: httpx.Client, path: str, **params) -> tuple[list[dict], int]:
    """Every item of a window and the number of pages, following next_page_token."""
    items, pages, token = [], 0, None
    while True:
        response = client.get(path, params={**params, **({"page_token": token} if token else {})})
        assert response.status_code == 200, response.text
        body = response.json()
        items += body["items"]
        pages += 1
        token = body["next_page_token"]
        if token is None:
            return items, pages


@pytest.fixture
def client_for():
    """``client_for(url)``: an authenticated httpx client, closed at the end."""
    clients = []

    def make(url: str) -> httpx.Client:
        clients.append(httpx.Client(base_url=url, headers=AUTH, timeout=10))
        return clients[-1]

    yield make
    for c in clients:
        c.close()


# Instants around T = 2026-11-26 00:00 +08:00, written with several offsets.
MIXED = [
    penalty("P-5", "2026-11-26T00:00:01+08:00"),
    penalty("P-3", "2026-11-25T16:00:00Z"),              # = T
    penalty("P-1", "2026-11-25T23:59:59+08:00"),
    penalty("P-4", "2026-11-25T10:00:00-06:00"),         # = T
    penalty("P-2", "2026-11-26T00:00:00+08:00"),         # = T
    penalty("P-6", "2026-11-25T16:00:00.500000+00:00"),  # = T + 0.5 s
]


def test_auth_errors_and_listing(tmp_path, client_for):
    with running(write_dataset(tmp_path, penalties=MIXED)) as url:
        assert httpx.get(f"{url}/healthz").status_code == 200
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"}):
            assert httpx.get(f"{url}{P}", headers=headers).status_code == 401
            assert httpx.get(f"{url}/api/v1/resources", headers=headers).status_code == 401
        client = client_for(url)
        listing = client.get("/api/v1/resources").json()["resources"]
        assert {"name": "financials", "key": ["uscc", "year"]} in listing and len(listing) == 18
        missing = client.get("/api/v1/resources/loans")
        assert missing.status_code == 404 and "loans" in missing.json()["error"]
        for params, named in [({"page_size": "0"}, "page_size"), ({"page_size": "5001"}, "page_size"),
                              ({"page_size": "ten"}, "page_size"), ({"updated_after": "2026-11-26"}, "updated_after"),
                              ({"updated_before": "yesterday"}, "updated_before"), ({"page_token": "xyz"}, "page_token")]:
            response = client.get(P, params=params)
            assert response.status_code == 400 and named in response.json()["error"], params
        token = client.get(P, params={"page_size": 2}).json()["next_page_token"]
        tampered = token[:-2] + ("AA" if token[-2:] != "AA" else "BB")
        assert client.get(P, params={"page_token": tampered}).status_code == 400
        assert client.get("/api/v1/resources/honors", params={"page_token": token}).status_code == 400
        assert client.get(P, params={"page_token": token}).status_code == 200


def test_paging_a_window_returns_every_version_once_in_order(tmp_path, client_for):
    versions = [penalty(f"P-{i:03d}", f"2026-11-{10 + i % 7:02d}T0{i % 10}:00:00+08:00") for i in range(60)]
    versions.append(versions[11])  # a duplicate version (same key and updated_at)
    keyless = penalty("?", "2026-11-12T02:00:00+08:00")
    del keyless["record_id"]
    lines = [*versions, keyless, "not json", "[1, 2]", penalty("P-X", "soon"), "", "  "]
    with running(write_dataset(tmp_path, penalties=lines[::-1])) as url:
        client = client_for(url)
        window = {"updated_after": "2026-11-11T00:00:00+08:00", "updated_before": "2026-11-15T00:00:00+08:00"}
        items, pages = fetch_all(client, P, page_size=4, **window)
        expected = sorted((v for v in [*versions, keyless] if window["updated_after"] < v["updated_at"] < window["updated_before"]),
                          key=lambda v: (v["updated_at"], v.get("record_id", "")))
        assert items == expected and pages == -(-len(expected) // 4)
        everything, _ = fetch_all(client, P, page_size=5000)
        assert len(everything) == 62 and everything[0] == versions[0]


def test_bounds_are_exclusive_instants_in_any_offset(tmp_path, client_for):
    with running(write_dataset(tmp_path, penalties=MIXED)) as url:
        client = client_for(url)
        ids = lambda **params: [r["record_id"] for r in fetch_all(client, P, **params)[0]]  # noqa: E731
        assert ids() == ["P-1", "P-2", "P-3", "P-4", "P-6", "P-5"]
        assert ids(updated_before="2026-11-25T16:00:00Z") == ["P-1"]
        assert ids(updated_after="2026-11-25T10:00:00-06:00") == ["P-6", "P-5"]
        assert ids(updated_after="2026-11-25T23:59:59+08:00", updated_before="2026-11-25T16:00:00.5+00:00",
                   page_size=1) == ["P-2", "P-3", "P-4"]
        # An unencoded '+' arrives as a space; it is still read as the offset.
        raw = client.get(f"{P}?updated_after=2026-11-26T00:00:00+08:00").json()["items"]
        assert [r["record_id"] for r in raw] == ["P-6", "P-5"]


def test_serves_the_acceptance_dataset_as_is(client_for, capfd):
    with running(ACCEPTANCE) as url:
        client = client_for(url)
        for path in sorted(ACCEPTANCE.glob("*.jsonl")):
            lines = path.read_text(encoding="utf-8").splitlines()
            placeable = [ln for ln in lines if validation.parse_timestamp(json.loads(ln).get("updated_at"))]
            body, token = "", None
            while True:
                response = client.get(f"/api/v1/resources/{path.stem}",
                                      params={"page_size": 50, **({"page_token": token} if token else {})})
                body += response.text
                token = response.json()["next_page_token"]
                if token is None:
                    break
            assert all(ln in body for ln in placeable), path.name  # the original lines, byte for byte
            assert len(fetch_all(client, f"/api/v1/resources/{path.stem}", page_size=5000)[0]) == len(placeable)
    warnings = capfd.readouterr().err
    assert "enterprises.jsonl:78: skipped" in warnings and "penalties.jsonl:62: skipped" in warnings


def fault_server(tmp_path: Path, spec: str, seed: int = 0):
    return running(write_dataset(tmp_path, penalties=MIXED), faults=spec, fault_seed=seed)


@pytest.mark.parametrize("kind", ["rate_limit", "server_error"])
def test_error_faults_fire(tmp_path, client_for, kind):
    with fault_server(tmp_path, f"{kind}=1") as url:
        client = client_for(url)
        response = client.get(P)
        assert response.status_code in ((429,) if kind == "rate_limit" else (500, 502, 503))
        if kind == "rate_limit":
            assert response.headers["Retry-After"] == "1"
        assert client.get("/api/v1/resources").status_code == 200  # only pages are faulted


def test_slow_truncated_duplicate_faults_fire(tmp_path, client_for):
    with fault_server(tmp_path / "a", "slow=1") as url:
        started = time.monotonic()
        assert client_for(url).get(P).status_code == 200 and time.monotonic() - started >= 0.5
    with fault_server(tmp_path / "b", "truncated=1") as url:
        response = client_for(url).get(P)
        assert response.status_code == 200
        with pytest.raises(ValueError):
            json.loads(response.text)
    with fault_server(tmp_path / "c", "duplicate=1") as url:
        items = client_for(url).get(P).json()["items"]
        assert len(items) == len(MIXED) + 1 and len({json.dumps(i) for i in items}) == len(MIXED)


def test_malformed_faults_are_refused_extra_records_identical_on_every_fetch(client_for):
    with running(ACCEPTANCE, faults="malformed=1") as url:
        client = client_for(url)
        for resource in ("enterprises", "financials", "penalties", "dishonest_debtors", "self_reports",
                         "supply_chain_links", "social_insurance", "objections"):
            served, _ = fetch_all(client, f"/api/v1/resources/{resource}", page_size=5000)
            bad = [r for r in served if "_fault" in r]
            assert len(bad) * 2 == len(served)
            assert all(validation.refusal(resource, r) for r in bad), resource
            key = validation_key(resource)
            valid_keys = {key(r) for r in served if "_fault" not in r and validation.refusal(resource, r) is None}
            assert not valid_keys & {key(r) for r in bad}, resource
            first = client.get(f"/api/v1/resources/{resource}", params={"page_size": 300}).content
            assert client.get(f"/api/v1/resources/{resource}", params={"page_size": 300}).content == first
        kinds = {r["_fault"] for r in fetch_all(client, P, page_size=5000)[0] if "_fault" in r}
        assert kinds == {"bad_uscc", "unknown_enum", "negative_money", "unparseable_date", "missing_required"}


def validation_key(resource: str):
    fields = registry_entry(resource).key
    return lambda record: tuple(record.get(f) for f in fields)


def test_late_versions_are_left_out_once(tmp_path, client_for):
    with fault_server(tmp_path, "late=1") as url:
        client = client_for(url)
        window = {"updated_after": "2026-11-25T17:00:00+08:00", "updated_before": "2026-11-26T00:00:00.6+08:00"}
        first = [r["record_id"] for r in client.get(P, params=window).json()["items"]]
        assert first == []  # every version lies within the 6 hours before updated_before
        again = [r["record_id"] for r in client.get(P, params=window).json()["items"]]
        assert again == ["P-1", "P-2", "P-3", "P-4", "P-6"]
        later = {"updated_before": "2026-11-26T05:00:00+08:00"}  # P-5 is new in this window
        assert [r["record_id"] for r in client.get(P, params=later).json()["items"]] == ["P-1", "P-2", "P-3", "P-4", "P-6"]
        assert [r["record_id"] for r in client.get(P, params=later).json()["items"]][-1] == "P-5"


def statuses(tmp_path: Path, seed: int) -> list[int]:
    with fault_server(tmp_path, "server_error=0.5,rate_limit=0.2", seed) as url:
        with httpx.Client(base_url=url, headers=AUTH) as client:
            return [client.get(P).status_code for _ in range(30)]


def test_faults_are_deterministic_by_seed(tmp_path):
    first = statuses(tmp_path, 7)
    assert statuses(tmp_path, 7) == first and statuses(tmp_path, 8) != first and {200, 429} <= set(first)


def test_a_retrying_client_loses_nothing_under_every_fault(client_for):
    """Retry errors and unparseable bodies, dedup, re-fetch for late versions: nothing is lost."""
    spec = "rate_limit=0.05,server_error=0.05,slow=0.02,truncated=0.05,duplicate=0.05,malformed=0.05,late=0.05"
    window = {"updated_before": "2026-11-26T12:00:00+08:00", "page_size": 40}
    cutoff = validation.parse_timestamp(window["updated_before"])
    with running(ACCEPTANCE, faults=spec, fault_seed=3) as url:
        client = client_for(url)
        for path in sorted(ACCEPTANCE.glob("*.jsonl")):
            got: set[str] = set()
            for _ in range(2):  # the second pass is the next night's overlapping re-fetch
                token = None
                while True:
                    response = client.get(f"/api/v1/resources/{path.stem}", params={**window, **({"page_token": token} if token else {})})
                    try:
                        body = response.json() if response.status_code == 200 else None
                    except ValueError:
                        body = None
                    if body is None:
                        continue
                    got |= {json.dumps(r, sort_keys=True) for r in body["items"] if "_fault" not in r}
                    token = body["next_page_token"]
                    if token is None:
                        break
            want = {json.dumps(json.loads(ln), sort_keys=True) for ln in path.read_text(encoding="utf-8").splitlines()
                    if (ts := validation.parse_timestamp(json.loads(ln).get("updated_at"))) and ts < cutoff}
            assert want <= got, path.name


@pytest.mark.parametrize("spec, named", [("rate_limit=2", "rate_limit=2"), ("flood=0.1", "flood"),
                                         ("slow", "slow"), ("late=x", "late=x")])
def test_a_bad_fault_spec_is_a_one_line_error(tmp_path, capsys, spec, named):
    assert cli.main(["platform", "serve", "--data", str(tmp_path), "--faults", spec]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and named in err and "rate_limit, server_error, slow" in err


END = "2026-11-26"


@pytest.fixture(scope="module")
def generated(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("generated")
    assert cli.main(["platform", "generate", "--out", str(out), "--enterprises", "1500", "--seed", "5",
                     "--end-date", END, "--years", "5"]) == 0
    return out


def read(folder: Path, resource: str) -> list[dict]:
    return [json.loads(ln) for ln in (folder / f"{resource}.jsonl").read_text(encoding="utf-8").splitlines()]


def test_generation_is_deterministic(tmp_path):
    def digest(out: Path, seed: str) -> dict[str, bytes]:
        cli.main(["platform", "generate", "--out", str(out), "--enterprises", "200", "--seed", seed, "--end-date", END])
        return {p.name: p.read_bytes() for p in sorted(out.glob("*.jsonl"))}

    first = digest(tmp_path / "a", "1")
    assert len(first) == 18 and digest(tmp_path / "b", "1") == first and digest(tmp_path / "c", "2") != first


def test_generated_records_are_valid_and_span_the_history(generated):
    cutoff = validation.parse_timestamp(f"{END}T23:59:59+08:00")
    on_end_date = 0
    for resource in (r.name for r in RESOURCES):
        records = read(generated, resource)
        assert records, f"{resource} is empty"
        for record in records:
            assert validation.refusal(resource, record) is None, (resource, record)
            stamp = validation.parse_timestamp(record["updated_at"])
            assert record["updated_at"].endswith("+08:00") and stamp <= cutoff
            on_end_date += record["updated_at"].startswith(END)
    assert on_end_date > 0
    enterprises = read(generated, "enterprises")
    assert {e["updated_at"][:4] for e in enterprises} >= {"2021", "2026"}
    assert all(e["uscc"][2:8] == e["region_code"] in
               {"231102", "231123", "231124", "231181", "231182", "231183"} for e in enterprises)
    # Later versions: a listing removed, a repair approved, an objection resolved, a report confirmed.
    assert any(r["removed_on"] for r in read(generated, "abnormal_operations"))
    assert any(r["status"] == "approved" for r in read(generated, "credit_repairs"))
    assert any(r["status"] in ("upheld", "rejected") for r in read(generated, "objections"))
    assert any(r["status"] == "confirmed" for r in read(generated, "self_reports"))
    reps = {e["legal_rep_id_no"] for e in enterprises}
    assert any(d["subject_type"] == "person" and d["subject_id"] in reps for d in read(generated, "dishonest_debtors"))


def test_leading_enterprises_have_supply_chains(generated):
    leading = {e["uscc"] for e in read(generated, "enterprises") if e["is_leading"]}
    assert 5 <= len(leading) <= 30
    partners: dict[str, set[str]] = {u: set() for u in leading}
    shares: dict[tuple[str, str], float] = {}
    for link in read(generated, "supply_chain_links"):
        assert link["leading_uscc"] in leading and link["partner_uscc"] != link["leading_uscc"]
        partners[link["leading_uscc"]].add(link["partner_uscc"])
        if link["valid_to"] is None:
            side = (link["leading_uscc"], link["relation"])
            shares[side] = shares.get(side, 0) + float(link["share_pct"])
    assert all(10 <= len(p) <= 200 for p in partners.values())
    assert all(0 < total <= 100 for total in shares.values())


@pytest.mark.parametrize("value", [
    "2026-11-26T23:59:59+08:00", "2026-11-26T16:00:00Z", "2026-11-26T10:00:00-06:00", "2026-11-26T10:00:00+00:00",
    "2026-02-30T10:00:00+08:00", "2026-11-26T24:00:00+08:00", "2026-11-26T23:60:00+08:00", "2026-11-26T23:59:59+08:0x",
    "2026-11-26T23:59:59.5+08:00", "2026-11-26T1a:00:00+08:00", "2026-11-26T10:00:00", "yesterday", None, 5])
def test_fast_updated_at_parsing_agrees_with_validation(value):
    ts = validation.parse_timestamp(value)
    assert updated_instant(value) == (None if ts is None else round(ts.timestamp() * 1_000_000))
