"""Seeded fault injection for the simulator (spec: credit-platform-api.md, "Faults").

``--faults kind=rate,...`` turns kinds of ``FAULT_KINDS`` on; every rate is a
probability 0..1. Request faults (429, 5xx, slow, truncated, duplicate) are drawn from
one RNG seeded by ``--fault-seed``, so a fixed sequence of requests meets a fixed
sequence of faults. Record faults (malformed, late) are decided per record version from
a hash of its line and the seed, so every fetch of a window sees the same extra
malformed lines and the same late versions.
"""
from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass

from stdnum.cn import uscc as stdnum_uscc

from creditplus import resources as R
from creditplus.errors import UserError

RETRY_AFTER_SECONDS = 1
SLOW_SECONDS = 0.5
SERVER_ERROR_STATUSES = (500, 502, 503)
USCC_ALPHABET = "0123456789ABCDEFGHJKLMNPQRTUWXY"
LATE_WINDOW_US = 6 * 3600 * 1_000_000  # replication lag: 6 hours before updated_before


@dataclass(frozen=True)
class FaultKind:
    name: str
    per_record: bool  # decided per record version (stable) rather than per request
    effect: str


FAULT_KINDS: dict[str, FaultKind] = {k.name: k for k in (
    FaultKind("rate_limit", False, f"429 with Retry-After: {RETRY_AFTER_SECONDS}"),
    FaultKind("server_error", False, "500, 502 or 503"),
    FaultKind("slow", False, f"the response is delayed by {SLOW_SECONDS} s"),
    FaultKind("truncated", False, "200 with a body cut off half way (unparseable)"),
    FaultKind("duplicate", False, "one record of the page is repeated"),
    FaultKind("malformed", True, "an extra refused record (BAD- key or corrupted uscc) after a record"),
    FaultKind("late", True, "a version within 6 h before updated_before is missing from the first response that should hold it"),
)}


def parse_spec(text: str) -> dict[str, float]:
    """``"rate_limit=0.05,slow=0.1"`` → ``{"rate_limit": 0.05, "slow": 0.1}``; ``""`` → ``{}``."""
    rates: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in (text or "").split(","))):
        kind, sep, rate_text = part.partition("=")
        try:
            rate = float(rate_text)
        except ValueError:
            rate = -1.0
        if not sep or kind.strip() not in FAULT_KINDS or not 0.0 <= rate <= 1.0:
            raise UserError(
                f"bad --faults part {part!r}: write kind=rate with a rate from 0 to 1, "
                f"kinds: {', '.join(FAULT_KINDS)} (e.g. rate_limit=0.05,late=0.02)")
        rates[kind.strip()] = rate
    return rates


def _corruptions(resource: R.Resource) -> dict[str, tuple[R.Field, ...]]:
    """Which fields each corruption can hit in ``resource`` (only kinds that apply)."""
    fields = resource.fields
    options = {
        "bad_uscc": tuple(f for f in fields if f.kind in (R.USCC, R.SUBJECT_ID)),
        "unknown_enum": tuple(f for f in fields if f.values),
        "negative_money": tuple(f for f in fields if f.kind == R.MONEY),
        "unparseable_date": tuple(f for f in fields if f.kind == R.DATE),
        "missing_required": tuple(f for f in fields if f.required and f.name not in resource.key),
    }
    return {kind: chosen for kind, chosen in options.items() if chosen}


def _bad_check_character(uscc: object) -> str:
    """An 18-character code built on ``uscc`` whose check character is wrong."""
    body = "".join(c for c in str(uscc or "") if c in USCC_ALPHABET)[:17].ljust(17, "0")
    right = stdnum_uscc.calc_check_digit(body)
    return body + USCC_ALPHABET[(USCC_ALPHABET.index(right) + 1) % len(USCC_ALPHABET)]


def corrupt(resource_name: str, record: dict, draw: int) -> dict:
    """A refused copy of ``record`` that never shares a key with a valid record.

    A single text key becomes ``BAD-<key>``; a key holding a uscc gets a wrong check
    character. Then one corruption the resource allows, chosen by ``draw``, is applied.
    """
    resource = R.resource(resource_name)
    bad = dict(record)
    key_field = resource.field_map[resource.key[0]]
    if len(resource.key) == 1 and key_field.kind == R.TEXT:
        bad[key_field.name] = f"BAD-{record.get(key_field.name)}"
    else:
        uscc_key = next(resource.field_map[k] for k in resource.key if resource.field_map[k].kind == R.USCC)
        bad[uscc_key.name] = _bad_check_character(record.get(uscc_key.name))
    options = _corruptions(resource)
    kind = sorted(options)[draw % len(options)]
    target = options[kind][(draw // 7) % len(options[kind])]
    if kind == "bad_uscc":
        if target.kind == R.SUBJECT_ID:
            bad["subject_type"] = "enterprise"
        bad[target.name] = _bad_check_character(record.get(target.name))
    elif kind == "unknown_enum":
        bad[target.name] = f"unknown_{target.values[0]}"
    elif kind == "negative_money":
        value = record.get(target.name)
        positive = isinstance(value, str) and value[:1].isdigit() and value.strip("0.")
        bad[target.name] = f"-{value}" if positive else "-100.00"
    elif kind == "unparseable_date":
        bad[target.name] = f"{str(record.get(target.name) or '2026')[:4]}-02-30"
    else:
        bad.pop(target.name, None)
    bad["_fault"] = kind
    return bad


class Faults:
    """The faults of one server: rates by kind, a request RNG and per-record state."""

    def __init__(self, rates: dict[str, float], seed: int = 0):
        self.rates = {kind: rates.get(kind, 0.0) for kind in FAULT_KINDS}
        self.seed = seed
        self._rng = random.Random(seed)
        self._held_back: set[bytes] = set()  # late versions already left out once

    def _roll(self, kind: str) -> bool:
        """One draw per request and kind, made whether or not the kind is on."""
        return self._rng.random() < self.rates[kind]

    def _draw(self, kind: str, line: bytes) -> int:
        digest = hashlib.blake2b(line, digest_size=8, key=f"{kind}:{self.seed}".encode()[:64]).digest()
        return int.from_bytes(digest, "little")

    def _hits(self, kind: str, line: bytes) -> bool:
        return self.rates[kind] > 0 and self._draw(kind, line) < self.rates[kind] * 2**64

    def request_faults(self) -> tuple[int | None, bool, bool, bool]:
        """(error status or None, slow, truncated, duplicate) for the next page request."""
        status = None
        if self._roll("rate_limit"):
            status = 429
        if self._roll("server_error") and status is None:
            status = self._rng.choice(SERVER_ERROR_STATUSES)
        return status, self._roll("slow"), self._roll("truncated"), self._roll("duplicate")

    def is_late(self, line: bytes, instant_us: int, reference_us: int) -> bool:
        """True the first time a lagging version is asked for; it is served afterwards."""
        if not (reference_us - LATE_WINDOW_US <= instant_us < reference_us and self._hits("late", line)):
            return False
        identity = hashlib.blake2b(line, digest_size=16).digest()
        if identity in self._held_back:
            return False
        self._held_back.add(identity)
        return True

    def malformed(self, resource: str, line: bytes) -> bytes | None:
        """The extra malformed line that follows ``line``, the same on every fetch."""
        if not self._hits("malformed", line):
            return None
        bad = corrupt(resource, json.loads(line), self._draw("malformed_kind", line))
        return json.dumps(bad, ensure_ascii=False).encode()

    def duplicate(self, items: list[bytes]) -> None:
        """Repeat one item of ``items`` in place, right after itself."""
        if items:
            i = self._rng.randrange(len(items))
            items.insert(i + 1, items[i])

    @property
    def record_faults(self) -> bool:
        return any(self.rates[k.name] > 0 for k in FAULT_KINDS.values() if k.per_record)

