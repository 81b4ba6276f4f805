"""The enterprise portal's identity (第十四条): credentials the credit office issues, and how a request proves one.

``creditplus portal credential --uscc X`` issues a credential for one enterprise: shown once, kept only as a
SHA-256 hash (it is 192 random bits, so a plain hash is enough), expiring, revocable by id or by enterprise.
The portal's backend, the only holder of an ``enterprise_portal`` login, signs an enterprise in with it and
then, per request and inside one transaction, enters its session token (``sql/setup/065_portal_identity.sql``
says why a setting the reader makes itself is never trusted).
"""
from __future__ import annotations

import datetime as dt
import hashlib
import secrets

import psycopg
from psycopg.rows import tuple_row

from creditplus import config, warehouse
from creditplus.errors import UserError

MAX_DAYS = 366


def issue_credential(conn: psycopg.Connection, uscc: str, days: int = 90) -> tuple[str, str, dt.datetime]:
    """(credential id, the credential to hand to the enterprise, when it expires) for ``uscc``."""
    if not conn.execute("select exists (select from publication.enterprise_evaluation where uscc = %s)",
                        (uscc,)).fetchone()[0]:
        raise UserError(f"{uscc!r} is not an enterprise this warehouse has graded and published: "
                        "check the unified social credit code")
    if not 1 <= days <= MAX_DAYS:
        raise UserError(f"--days {days}: a credential lasts 1 to {MAX_DAYS} days")
    credential_id, secret = secrets.token_hex(8), secrets.token_urlsafe(24)
    expires_at, = conn.execute(
        "insert into audit.portal_credentials (credential_id, uscc, secret_sha256, expires_at)"
        " values (%s, %s, %s, now() + make_interval(days => %s)) returning expires_at",
        (credential_id, uscc, hashlib.sha256(secret.encode()).digest(), days)).fetchone()
    return credential_id, f"{credential_id}.{secret}", expires_at


def sign_in(conn: psycopg.Connection, credential: str) -> str | None:
    """The session token ``credential`` signs in to (valid 30 minutes, never past the credential), or None when it
    is unknown, wrong, revoked or expired (not told apart)."""
    return _scalar(conn, "select enterprise_self.sign_in(%s)", credential)


def enter_session(conn: psycopg.Connection, token: str | None) -> str | None:
    """Enter the signed-in session ``token`` in ``conn``'s open transaction: its queries of ``enterprise_self``
    then show that enterprise, until the transaction ends. The verified uscc, or None."""
    if conn.autocommit and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
        raise ValueError("enter a portal session inside a transaction (it ends with it)")
    return _scalar(conn, "select enterprise_self.enter(%s)", token)


def enter(conn: psycopg.Connection, credential: str) -> str | None:
    """``sign_in`` with ``credential`` and ``enter_session`` at once."""
    return enter_session(conn, sign_in(conn, credential))


def _scalar(conn: psycopg.Connection, query: str, value: str | None) -> str | None:
    return conn.cursor(row_factory=tuple_row).execute(query, (value,)).fetchone()[0]


def credential_command(args) -> int:
    """``creditplus portal credential --uscc X [--days N]``."""
    with warehouse.connect() as conn, conn.transaction():
        credential_id, credential, expires_at = issue_credential(conn, args.uscc, args.days)
    print(f"credential {credential_id} for {args.uscc}, valid until "
          f"{expires_at.astimezone(config.CST):%Y-%m-%d %H:%M} +08:00 (shown once; hand it to the enterprise):")
    print(credential)
    return 0


def revoke_command(args) -> int:
    """``creditplus portal revoke --credential ID | --uscc X``: signed-in sessions end at their next request."""
    column = "credential_id" if args.credential else "uscc"
    with warehouse.connect() as conn, conn.transaction():
        revoked = conn.execute(f"update audit.portal_credentials set revoked_at = now()"
                               f" where {column} = %s and revoked_at is null returning credential_id",
                               (args.credential or args.uscc,)).fetchall()
    if not revoked:
        raise UserError(f"no valid credential {'with id' if args.credential else 'for'} "
                        f"{args.credential or args.uscc!r}: `creditplus portal list` shows them")
    print(f"revoked {len(revoked)} credential(s): {', '.join(r for r, in revoked)}")
    return 0


def list_command(args) -> int:
    """``creditplus portal list [--uscc X]``: credentials (never their secrets), newest first."""
    with warehouse.connect() as conn:
        rows = conn.execute(
            "select credential_id, uscc, issued_at, expires_at, revoked_at from audit.portal_credentials"
            " where %(uscc)s::text is null or uscc = %(uscc)s order by issued_at desc", {"uscc": args.uscc}).fetchall()
    print(f"{'credential':<17} {'uscc':<19} {'issued':<17} {'expires':<17} state")
    now = dt.datetime.now(config.CST)
    for credential_id, uscc, issued, expires, revoked in rows:
        state = "revoked" if revoked else "expired" if expires <= now else "valid"
        print(f"{credential_id:<17} {uscc:<19} {issued.astimezone(config.CST):%Y-%m-%d %H:%M} "
              f"{expires.astimezone(config.CST):%Y-%m-%d %H:%M} {state}")
    return 0
