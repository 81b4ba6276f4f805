"""The ``creditplus`` command (contract: ARCHITECTURE.md, "Command-line contract").

Each subcommand names ``module:function`` taking the parsed arguments; modules are
imported only when their command runs, so ``creditplus --help`` stays fast.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
from pathlib import Path

from creditplus.errors import UserError


def iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD, e.g. 2026-11-26") from None


def existing_dir(text: str) -> Path:
    path = Path(text)
    if not text.strip() or not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text!r} is not a directory; give a dataset directory made by `creditplus platform generate`")
    return path


def port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a TCP port; use 1 to 65535, e.g. 8600")
    return port


def _command(sub, name: str, target: str, help_text: str) -> argparse.ArgumentParser:
    parser = sub.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(target=target)
    return parser


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="creditplus", description="Heihe 信用+龙头企业 nightly credit grading warehouse")
    sub = parser.add_subparsers(dest="command", required=True)

    platform = sub.add_parser("platform", help="credit platform simulator").add_subparsers(dest="platform_command", required=True)
    p = _command(platform, "generate", "creditplus.platform.generator:main", "write a deterministic dataset directory")
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--enterprises", type=int, default=3000)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--end-date", type=iso_date, default=None, help="last day of history (default: yesterday, +08:00)")
    p.add_argument("--years", type=int, default=5)
    p = _command(platform, "serve", "creditplus.platform.server:main", "serve a dataset directory over HTTP")
    p.add_argument("--data", type=existing_dir, required=True)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=8600)
    p.add_argument("--token-file", type=Path, default=None,
                   help="file holding the bearer token (else --token, else $CREDITPLUS_PLATFORM_TOKEN, else 'dev-token')")
    p.add_argument("--token", default=None,
                   help="the bearer token itself: every local user sees it in the process list (a warning says so); "
                        "prefer $CREDITPLUS_PLATFORM_TOKEN or --token-file")
    p.add_argument("--faults", default="", help="kind=rate,... kinds: rate_limit server_error slow truncated duplicate malformed late")
    p.add_argument("--fault-seed", type=int, default=0)

    p = _command(sub, "setup", "creditplus.warehouse:setup_command", "create the warehouse schemas and tables (idempotent)")
    p = _command(sub, "nightly", "creditplus.nightly:main", "run the credit_nightly DAG through Airflow for evaluation date D")
    p.add_argument("--date", type=iso_date, required=True, help="evaluation date D (cutoff D+1 00:00 +08:00)")
    p.add_argument("--scheduler", action="store_true",
                   help="have the running Airflow services (`creditplus airflow up`) do the night, not an in-process run")
    p = _command(sub, "backfill", "creditplus.nightly:backfill_main",
                 "have the running scheduler grade every day of a range, in order (an Airflow backfill)")
    p.add_argument("--from", dest="from_date", type=iso_date, required=True)
    p.add_argument("--to", dest="to_date", type=iso_date, required=True)
    p = _command(sub, "demo", "creditplus.demo:main", "generate, serve and grade a city, then print where to look")
    p.add_argument("--enterprises", type=int, default=3000)

    bench = sub.add_parser("bench", help="benchmarks that print their figures").add_subparsers(dest="bench_command", required=True)
    p = _command(bench, "extract", "creditplus.bench.extract:main", "extract-and-load throughput against its floors")
    p.add_argument("--enterprises", type=int, default=100_000)
    p = _command(bench, "score", "creditplus.bench.score:main", "dbt build time against the decode floor, quality gates against the build")
    p.add_argument("--enterprises", type=int, default=100_000)

    airflow = sub.add_parser("airflow", help="Airflow's services as production runs them").add_subparsers(
        dest="airflow_command", required=True)
    _command(airflow, "up", "creditplus.airflow_services:up_command",
             "start the api-server, scheduler, dag-processor, triggerer and a Celery worker; return once healthy")
    _command(airflow, "status", "creditplus.airflow_services:status_command", "each service with its pid, and the executor")
    _command(airflow, "down", "creditplus.airflow_services:down_command", "stop exactly the services `up` started")
    _command(airflow, "init", "creditplus.deployment:init_command",
             "migrate Airflow's metadata database, set the platform pool, make the admin password (idempotent)")

    publication = sub.add_parser("publication", help="what the channels read").add_subparsers(
        dest="publication_command", required=True)
    p = _command(publication, "list", "creditplus.publish:list_command", "the latest publications, the current one marked *")
    p.add_argument("--limit", type=int, default=10)
    p = _command(publication, "rollback", "creditplus.publish:rollback_command",
                 "make the publication before the current one (or --to ID) current again, for every channel at once")
    p.add_argument("--to", type=int, default=None, help="a publication id (`creditplus publication list`)")

    p = _command(bench, "dbt", "creditplus.bench.dbt_stage:main",
                 "the dbt stage under the scheduler (Celery) against one dbt build of the same nodes")
    p.add_argument("--enterprises", type=int, default=3000)

    model = sub.add_parser("model", help="scoring model versions").add_subparsers(dest="model_command", required=True)
    p = _command(model, "compare", "creditplus.model_compare:main", "grade migration between two model versions")
    p.add_argument("--from", dest="from_version", required=True)
    p.add_argument("--to", dest="to_version", required=True)
    p.add_argument("--date", type=iso_date, required=True)

    access = sub.add_parser("access", help="channel login users").add_subparsers(dest="access_command", required=True)
    for action in ("grant", "revoke"):
        p = _command(access, action, f"creditplus.access:{action}", f"{action} a login user's membership of a channel")
        p.add_argument("--channel", required=True)
        p.add_argument("--user", required=True)

    portal = sub.add_parser("portal", help="the enterprise portal's credentials (第十四条)").add_subparsers(
        dest="portal_command", required=True)
    p = _command(portal, "credential", "creditplus.portal:credential_command",
                 "issue an enterprise its portal credential (shown once, stored hashed)")
    p.add_argument("--uscc", required=True, help="the enterprise's unified social credit code")
    p.add_argument("--days", type=int, default=90, help="days until it expires (default 90, at most 366)")
    p = _command(portal, "revoke", "creditplus.portal:revoke_command",
                 "revoke a credential, or every credential of an enterprise; its sessions end at once")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--credential", help="a credential id (`creditplus portal list`)")
    which.add_argument("--uscc")
    p = _command(portal, "list", "creditplus.portal:list_command", "credentials and their state, never their secrets")
    p.add_argument("--uscc", default=None)
    p = _command(portal, "serve", "creditplus.portal_web:serve_command",
                 "serve the read-only portal: public grade lookup, and each enterprise's own page after sign-in")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=port_number, default=8700)
    return parser


def main(argv: list[str] | None = None) -> int:
    # What the commands write holds secrets (Airflow's metadata, connections in its logs, the admin password)
    # or personal data (generated datasets, Data Docs samples): readable by its owner only, also in the
    # processes they start (Airflow's services, the in-process night, PostgreSQL).
    os.umask(0o077)
    args = build_parser().parse_args(argv)
    module_name, func_name = args.target.split(":")
    try:
        result = getattr(importlib.import_module(module_name), func_name)(args)
    except UserError as exc:
        print(f"creditplus: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
