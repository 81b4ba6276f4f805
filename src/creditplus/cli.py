"""The ``creditplus`` command (contract: ARCHITECTURE.md, "Command-line contract").

Each subcommand names ``module:function`` taking the parsed arguments; modules are
imported only when their command runs, so ``creditplus --help`` stays fast (the help's lists of
channels and fault kinds are read from their registries, ``channels`` and ``platform.faults``).
Every command's ``--help`` shows each option's default, the environment variables the command
reads (their meaning and default from ``config.ENVIRONMENT``) and an example; ``--version`` is
the installed package's version.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
import textwrap
from pathlib import Path

from creditplus import config
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


class HelpFormatter(argparse.HelpFormatter):
    """Each option's default after its help (unless the help says what the default is), and the epilog's
    lines kept: its examples whole, to copy, the rest wrapped under their own indentation."""

    def _get_help_string(self, action: argparse.Action) -> str:
        text = action.help or ""
        unset = action.default in (None, "", argparse.SUPPRESS) or action.default is False  # a flag's False; not 0
        if not action.option_strings or action.required or unset or "default" in text:
            return text
        return f"{text} (default: %(default)s)"

    def _fill_text(self, text: str, width: int, indent: str) -> str:
        lines = []
        for line in text.splitlines():
            lead = line[:len(line) - len(line.lstrip())]
            if line.lstrip().startswith("creditplus "):
                lines.append(indent + line)
            else:
                lines.append(textwrap.fill(line, width, initial_indent=indent, subsequent_indent=indent + lead,
                                           break_long_words=False, break_on_hyphens=False))
        return "\n".join(lines)


class VersionAction(argparse.Action):
    """``--version``: the installed package's version (pyproject.toml's, through its metadata)."""

    def __init__(self, option_strings, dest=argparse.SUPPRESS, default=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest, nargs=0, default=default, help=help)

    def __call__(self, parser, namespace, values, option_string=None):
        from importlib import metadata

        try:
            print(f"creditplus {metadata.version('creditplus')}")
        except metadata.PackageNotFoundError:
            parser.exit(2, "creditplus: error: the creditplus package is not installed; run `make install`\n")
        parser.exit()


def _examples(examples: tuple[str, ...]) -> str:
    return f"example{'s' if len(examples) > 1 else ''}:\n" + "\n".join(f"  {line}" for line in examples)


def _environment(names: tuple[str, ...]) -> str:
    """The epilog's list of the variables a command reads, from the one registry (``config.ENVIRONMENT``)."""
    if not names:
        return "environment: reads none of creditplus's variables"
    lines = ["environment:"]
    for name in names:
        variable = config.ENVIRONMENT[name]
        lines += [f"  {name}", f"      {variable.meaning} (default: {variable.default})".replace("`", "")]
    return "\n".join(lines)


def _group(sub, name: str, help_text: str):
    """A command group (``creditplus platform ...``); its epilog lists its commands' examples (``_finish``)."""
    parser = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter)
    return parser.add_subparsers(dest=f"{name}_command", required=True, metavar="COMMAND")


def _command(sub, name: str, target: str, help_text: str, *, reads: tuple[str, ...],
             example: str | tuple[str, ...]) -> argparse.ArgumentParser:
    """A command: ``target`` (``module:function``) runs it; ``reads`` names the environment variables it reads
    (``config.ENVIRONMENT``); ``example`` is one or more invocations, each starting ``creditplus ``."""
    examples = (example,) if isinstance(example, str) else example
    parser = sub.add_parser(name, help=help_text, description=help_text, formatter_class=HelpFormatter,
                            epilog=f"{_environment(reads)}\n\n{_examples(examples)}")
    parser.set_defaults(target=target, reads=reads, examples=examples)
    return parser


def _finish(parser: argparse.ArgumentParser) -> None:
    """Give every command group an epilog with the first example of each of its commands."""
    for child in _commands(parser):
        _finish(child)
        if child.get_default("target") is None:
            child.epilog = _examples(tuple(command.get_default("examples")[0] for command in _commands(child)))


def _commands(parser: argparse.ArgumentParser) -> list[argparse.ArgumentParser]:
    """The direct subcommand parsers of ``parser``."""
    return [child for action in parser._actions if isinstance(action, argparse._SubParsersAction)
            for child in action.choices.values()]


WAREHOUSE = ("CREDITPLUS_WAREHOUSE_URL", "CREDITPLUS_HOME")  # unset URL: the embedded server under the home
PLATFORM = ("CREDITPLUS_PLATFORM_URL", "CREDITPLUS_PLATFORM_TOKEN")
NIGHT = ("CREDITPLUS_MAX_RETRY_AFTER", "CREDITPLUS_DBT_WORK_MEM")  # what a night's extract and dbt read
SERVICES = (*WAREHOUSE, *PLATFORM, "CREDITPLUS_REDIS_URL", "CREDITPLUS_AIRFLOW_PORT", "CREDITPLUS_AIRFLOW_SETTINGS",
            "CREDITPLUS_ALERT_EMAIL", "CREDITPLUS_SMTP_URL", "CREDITPLUS_PLATFORM_POOL_SLOTS",
            "CREDITPLUS_PUBLISH_DEADLINE", "CREDITPLUS_NIGHTLY_SCHEDULE", *NIGHT)


def build_parser() -> argparse.ArgumentParser:
    from creditplus.channels import BY_NAME as CHANNELS
    from creditplus.platform.faults import FAULT_KINDS

    parser = argparse.ArgumentParser(
        prog="creditplus", description="Heihe 信用+龙头企业 nightly credit grading warehouse",
        formatter_class=HelpFormatter,
        epilog="Each command's --help shows its options with their defaults, the environment variables it reads "
               "and an example.\n\nexamples:\n  creditplus demo --enterprises 300\n"
               "  creditplus nightly --date 2026-11-26")
    parser.add_argument("--version", action=VersionAction, help="print creditplus's version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    platform = _group(sub, "platform", "credit platform simulator")
    p = _command(platform, "generate", "creditplus.platform.generator:main", "write a deterministic dataset directory",
                 reads=(),
                 example="creditplus platform generate --out /tmp/city --enterprises 300 --end-date 2026-11-26")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="the dataset directory to write")
    p.add_argument("--enterprises", type=int, default=3000, metavar="N", help="enterprises in the city")
    p.add_argument("--seed", type=int, default=42, help="random seed: the same arguments give the same bytes")
    p.add_argument("--end-date", type=iso_date, default=None, metavar="YYYY-MM-DD",
                   help="last day of history (default: yesterday, +08:00)")
    p.add_argument("--years", type=int, default=5, help="years of history")
    p = _command(platform, "serve", "creditplus.platform.server:main", "serve a dataset directory over HTTP",
                 reads=("CREDITPLUS_PLATFORM_TOKEN",),
                 example=("creditplus platform serve --data /tmp/city --token-file /tmp/city.token",
                          "creditplus platform serve --data /tmp/city --faults rate_limit=0.05,late=0.02"))
    p.add_argument("--data", type=existing_dir, required=True, metavar="DIR",
                   help="a dataset directory (`creditplus platform generate`)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=port_number, default=8600, help="TCP port to listen on")
    p.add_argument("--token-file", type=Path, default=None, metavar="FILE",
                   help="file holding the bearer token (default: --token, else $CREDITPLUS_PLATFORM_TOKEN, "
                        "else 'dev-token')")
    p.add_argument("--token", default=None,
                   help="the bearer token itself: every local user sees it in the process list (a warning says so); "
                        "prefer $CREDITPLUS_PLATFORM_TOKEN or --token-file (default: none)")
    p.add_argument("--faults", default="", metavar="KIND=RATE,...",
                   help=f"faults to inject, each a kind and a rate from 0 to 1; kinds: {', '.join(FAULT_KINDS)} "
                        "(default: none)")
    p.add_argument("--fault-seed", type=int, default=0, metavar="SEED", help="random seed of the fault injector")

    _command(sub, "setup", "creditplus.warehouse:setup_command", "create the warehouse schemas and tables (idempotent)",
             reads=WAREHOUSE, example="creditplus setup")
    p = _command(sub, "nightly", "creditplus.nightly:main",
                 "run the credit_nightly DAG through Airflow for evaluation date D",
                 reads=(*WAREHOUSE, *PLATFORM, *NIGHT),
                 example=("creditplus nightly --date 2026-11-26", "creditplus nightly --date 2026-11-26 --scheduler"))
    p.add_argument("--date", type=iso_date, required=True, metavar="D",
                   help="evaluation date D, YYYY-MM-DD (cutoff D+1 00:00 +08:00)")
    p.add_argument("--scheduler", action="store_true",
                   help="have the running Airflow services (`creditplus airflow up`) do the night, "
                        "not an in-process run")
    p = _command(sub, "backfill", "creditplus.nightly:backfill_main",
                 "have the running scheduler grade every day of a range, in order (an Airflow backfill)",
                 reads=(*WAREHOUSE, *PLATFORM), example="creditplus backfill --from 2026-11-24 --to 2026-11-26")
    p.add_argument("--from", dest="from_date", type=iso_date, required=True, metavar="D1", help="first day, YYYY-MM-DD")
    p.add_argument("--to", dest="to_date", type=iso_date, required=True, metavar="D2", help="last day, YYYY-MM-DD")
    p = _command(sub, "demo", "creditplus.demo:main", "generate, serve and grade a city, then print where to look",
                 reads=(*WAREHOUSE, *NIGHT), example="creditplus demo --enterprises 300")
    p.add_argument("--enterprises", type=int, default=3000, metavar="N", help="enterprises in the city")

    bench = _group(sub, "bench", "benchmarks that print their figures")
    for name, target, help_text, reads, enterprises in (
            ("extract", "creditplus.bench.extract:main", "extract-and-load throughput against its floors",
             (*WAREHOUSE, "CREDITPLUS_MAX_RETRY_AFTER"), 100_000),
            ("score", "creditplus.bench.score:main",
             "dbt build time against the decode floor, quality gates against the build",
             (*WAREHOUSE, "CREDITPLUS_DBT_WORK_MEM"), 100_000),
            ("dbt", "creditplus.bench.dbt_stage:main",
             "the dbt stage under the scheduler (Celery) against one dbt build of the same nodes",
             (*WAREHOUSE, "CREDITPLUS_DBT_WORK_MEM"), 3000)):
        p = _command(bench, name, target, help_text, reads=reads,
                     example=f"creditplus bench {name} --enterprises {enterprises}")
        p.add_argument("--enterprises", type=int, default=enterprises, metavar="N",
                       help="enterprises in the generated city (cached under $CREDITPLUS_HOME/bench)")

    airflow = _group(sub, "airflow", "Airflow's services as production runs them")
    _command(airflow, "up", "creditplus.airflow_services:up_command",
             "start the api-server, scheduler, dag-processor, triggerer and a Celery worker; return once healthy",
             reads=SERVICES, example="creditplus airflow up")
    _command(airflow, "status", "creditplus.airflow_services:status_command",
             "each service with its pid, and the executor",
             reads=("CREDITPLUS_HOME",), example="creditplus airflow status")
    _command(airflow, "down", "creditplus.airflow_services:down_command", "stop exactly the services `up` started",
             reads=("CREDITPLUS_HOME",), example="creditplus airflow down")
    _command(airflow, "init", "creditplus.deployment:init_command",
             "migrate Airflow's metadata database, set the platform pool, make the admin password (idempotent)",
             reads=("CREDITPLUS_PLATFORM_POOL_SLOTS",), example="creditplus airflow init")

    publication = _group(sub, "publication", "what the channels read")
    p = _command(publication, "list", "creditplus.publish:list_command",
                 "the latest publications, the current one marked *",
                 reads=WAREHOUSE, example="creditplus publication list --limit 5")
    p.add_argument("--limit", type=int, default=10, metavar="N", help="publications to show")
    p = _command(publication, "rollback", "creditplus.publish:rollback_command",
                 "make the publication before the current one (or --to ID) current again, for every channel at once",
                 reads=WAREHOUSE,
                 example=("creditplus publication rollback", "creditplus publication rollback --to 41"))
    p.add_argument("--to", type=int, default=None, metavar="ID",
                   help="a publication id (`creditplus publication list`) (default: the one before the current)")

    model = _group(sub, "model", "scoring model versions")
    p = _command(model, "compare", "creditplus.model_compare:main", "grade migration between two model versions",
                 reads=(*WAREHOUSE, "CREDITPLUS_DBT_WORK_MEM"),
                 example="creditplus model compare --from v1 --to v2 --date 2026-11-26")
    p.add_argument("--from", dest="from_version", required=True, metavar="VERSION", help="the current model version")
    p.add_argument("--to", dest="to_version", required=True, metavar="VERSION",
                   help="the model version to compare with")
    p.add_argument("--date", type=iso_date, required=True, metavar="D", help="evaluation date D, YYYY-MM-DD")

    access = _group(sub, "access", "channel login users")
    for action, reads in (("grant", (*WAREHOUSE, "CREDITPLUS_ACCESS_PASSWORD")), ("revoke", WAREHOUSE)):
        p = _command(access, action, f"creditplus.access:{action}", f"{action} a login user's membership of a channel",
                     reads=reads, example=f"creditplus access {action} --channel finance --user bank_xyz")
        # The channels are listed, not argparse choices: an unknown one is access.py's one-line error.
        p.add_argument("--channel", required=True, help=f"one of {', '.join(CHANNELS)}")
        p.add_argument("--user", required=True, help="the login user (lower-case letters, digits, _)")

    portal = _group(sub, "portal", "the enterprise portal's credentials (第十四条)")
    p = _command(portal, "credential", "creditplus.portal:credential_command",
                 "issue an enterprise its portal credential (shown once, stored hashed)",
                 reads=WAREHOUSE, example="creditplus portal credential --uscc 91231100MA1AAAAA1A --days 90")
    p.add_argument("--uscc", required=True, help="the enterprise's unified social credit code")
    p.add_argument("--days", type=int, default=90, help="days until it expires, at most 366")
    p = _command(portal, "revoke", "creditplus.portal:revoke_command",
                 "revoke a credential, or every credential of an enterprise; its sessions end at once",
                 reads=WAREHOUSE, example=("creditplus portal revoke --credential 3f9c0d6e1a2b4c5d",
                                           "creditplus portal revoke --uscc 91231100MA1AAAAA1A"))
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--credential", metavar="ID", help="a credential id (`creditplus portal list`)")
    which.add_argument("--uscc", help="an enterprise: all of its credentials")
    p = _command(portal, "list", "creditplus.portal:list_command", "credentials and their state, never their secrets",
                 reads=WAREHOUSE, example="creditplus portal list --uscc 91231100MA1AAAAA1A")
    p.add_argument("--uscc", default=None, help="one enterprise's credentials (default: every enterprise's)")
    p = _command(portal, "serve", "creditplus.portal_web:serve_command",
                 "serve the read-only portal: public grade lookup, and each enterprise's own page after sign-in",
                 reads=(*WAREHOUSE, "CREDITPLUS_PORTAL_PUBLIC_URL", "CREDITPLUS_PORTAL_ENTERPRISE_URL"),
                 example="creditplus portal serve --port 8700")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=port_number, default=8700, help="TCP port to listen on")
    _finish(parser)
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
