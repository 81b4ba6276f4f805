"""The CLI contract: bad arguments give a one-line error and a non-zero exit, not a traceback; every command's
help shows its defaults, the environment it reads and an example; progress only on a terminal."""
import argparse
import datetime as dt
import re
import shlex
import subprocess
import sys
import time
from pathlib import Path

import pytest

from creditplus import cli, config


def run_cli(*args):
    return subprocess.run([sys.executable, "-m", "creditplus.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("args, fragment", [
    (["nightly", "--date", "2026-02-30"], "is not a date"),
    (["nightly", "--date", "yesterday"], "is not a date"),
    (["platform", "serve", "--data", "/nonexistent/dataset"], "is not a directory"),
])
def test_bad_arguments_exit_non_zero_with_one_line(args, fragment):
    result = run_cli(*args)
    assert result.returncode == 2
    assert fragment in result.stderr
    assert "Traceback" not in result.stderr


SECRET = "s3cret-Pw"
BAD_WAREHOUSES = {
    "unreachable server": (f"postgresql://postgres:{SECRET}@127.0.0.1:1/creditplus", "cannot connect to the warehouse"),
    "missing database": (f"postgresql://postgres@127.0.0.1:5432/no_such_db_cp?password={SECRET}", 'database "no_such_db_cp" does not exist'),
    "malformed URL": (f"postgresql://postgres:{SECRET}@[::1", "the warehouse URL is malformed"),
    "keyword form": (f"host=127.0.0.1 port=1 password={SECRET} dbname=creditplus", "cannot connect to the warehouse"),
    "not a connection string": ("not a url", "the warehouse URL is malformed"),
}


@pytest.mark.parametrize("command", [["setup"], ["access", "grant", "--channel", "finance", "--user", "bob"],
                                     ["nightly", "--date", "2026-11-20"]], ids=["setup", "access grant", "nightly"])
@pytest.mark.parametrize("problem", BAD_WAREHOUSES)
def test_a_warehouse_problem_is_one_line_without_its_password(command, problem, tmp_path):
    """Checked before anything runs (``nightly`` too: no platform call, no Airflow), and never a traceback."""
    import os

    warehouse_url, fragment = BAD_WAREHOUSES[problem]
    result = subprocess.run([sys.executable, "-m", "creditplus.cli", *command], capture_output=True, text=True,
                            timeout=60, env={**os.environ, "CREDITPLUS_HOME": str(tmp_path),
                                             "CREDITPLUS_WAREHOUSE_URL": warehouse_url})
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("creditplus: error:")]
    assert len(errors) == 1 and fragment in errors[0] and "CREDITPLUS_WAREHOUSE_URL" in errors[0], result.stderr
    assert "Traceback" not in result.stderr and SECRET not in result.stdout + result.stderr


@pytest.mark.parametrize("text, shown", [
    (f"postgresql://u:{SECRET}@db:5432/w", "postgresql://u:***@db:5432/w"),
    (f"postgresql://u@db/w?sslmode=require&password={SECRET}&x=1", "postgresql://u@db/w?sslmode=require&password=***&x=1"),
    (f"host=db password={SECRET} dbname=w", "host=db password=*** dbname=w"),
    (f"host=db PASSWORD = '{SECRET} with space' dbname=w", "host=db PASSWORD = *** dbname=w"),
    (f"sslpassword={SECRET}", "sslpassword=***"),
    (f"redis://:{SECRET}@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"),
    (f'in URI: "postgresql://u:{SECRET}@[::1"', 'in URI: "postgresql://u:***@[::1"'),
    ("http://127.0.0.1:8080/api/v2 (user admin@example)", "http://127.0.0.1:8080/api/v2 (user admin@example)"),
])
def test_every_form_of_password_is_redacted(text, shown):
    from creditplus.warehouse import redact

    assert redact(text) == shown


def _dataset_with_a_directory(tmp_path):
    (tmp_path / "enterprises.jsonl").mkdir()
    return str(tmp_path)


@pytest.mark.parametrize("args, fragment", [
    (lambda tmp: ["platform", "serve", "--data", tmp, "--port", "99999"], "'99999' is not a TCP port; use 1 to 65535"),
    (lambda tmp: ["platform", "serve", "--data", ""], "'' is not a directory"),
    (lambda tmp: ["platform", "serve", "--data", tmp], "holds none of the resource files (enterprises.jsonl, ...)"),
    (lambda tmp: ["platform", "serve", "--data", _dataset_with_a_directory(Path(tmp))], "enterprises.jsonl: Is a directory"),
    (lambda tmp: ["platform", "serve", "--data", tmp, "--token-file", f"{tmp}/missing"], "cannot read the token file"),
    (lambda tmp: ["platform", "generate", "--out", "/proc/nope", "--enterprises", "5"], "cannot write the dataset to /proc/nope"),
], ids=["port out of range", "empty data path", "no resource files", "resource file is a directory",
        "missing token file", "unwritable output"])
def test_the_simulators_command_line_refuses_in_one_line(args, fragment, tmp_path):
    result = run_cli(*args(str(tmp_path)))
    assert result.returncode == 2, result.stdout + result.stderr
    assert fragment in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1 or "usage:" in result.stderr


def test_an_unset_platform_token_is_named(warehouse_url, tmp_path):
    import os

    env = {k: v for k, v in os.environ.items() if k != "CREDITPLUS_PLATFORM_TOKEN"}
    result = subprocess.run([sys.executable, "-m", "creditplus.cli", "nightly", "--date", "2026-11-20"], text=True,
                            capture_output=True, timeout=60,
                            env={**env, "CREDITPLUS_HOME": str(tmp_path), "CREDITPLUS_WAREHOUSE_URL": warehouse_url})
    assert result.returncode == 2
    assert result.stderr.strip() == ("creditplus: error: CREDITPLUS_PLATFORM_TOKEN is not set: set it to the credit "
                                     "platform's bearer token")


def test_the_simulators_token_stays_out_of_the_process_list(tmp_path):
    """From a file (or the environment) the token is not in the command line; ``--token`` still works, warned,
    and wins over a token left in the environment (shared/acceptance/run exports each case's token after
    starting its server: the next case's server must take its own ``--token``)."""
    import os

    import httpx

    from creditplus.platform.generator import generate
    from creditplus.warehouse import free_port

    data = tmp_path / "city"
    generate(data, 5, 1, dt.date(2026, 11, 26), 1)
    token_file = tmp_path / "token"
    token_file.write_text("file-token-93e1\n")
    for how, expected_warning in ((["--token-file", str(token_file)], False), (["--token", "file-token-93e1"], True)):
        port = free_port()
        server = subprocess.Popen([sys.executable, "-m", "creditplus.cli", "platform", "serve", "--data", str(data),
                                   "--port", str(port), *how], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                  env={**os.environ, "CREDITPLUS_PLATFORM_TOKEN": "an-earlier-token"})
        try:
            assert "serving" in server.stdout.readline() + server.stdout.readline()
            for _ in range(200):  # the line is printed just before uvicorn binds
                try:
                    answer = httpx.get(f"http://127.0.0.1:{port}/api/v1/resources",
                                       headers={"Authorization": "Bearer file-token-93e1"})
                    break
                except httpx.ConnectError:
                    time.sleep(0.05)
            assert answer.status_code == 200
            in_command_line = b"file-token-93e1" in Path(f"/proc/{server.pid}/cmdline").read_bytes()
        finally:
            server.terminate()
            _, err = server.communicate(timeout=30)
        assert in_command_line == expected_warning
        assert ("warning: --token shows the token to every local user" in err) == expected_warning


# --- version, help and progress (issue 14) --------------------------------------------------------------------

def _commands(parser, words=()):
    """(words, parser) of the program, every command group and every command."""
    yield words, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                yield from _commands(child, (*words, name))


COMMANDS = dict(_commands(cli.build_parser()))


def test_version_is_the_installed_packages():
    import tomllib
    from importlib import metadata

    result = run_cli("--version")
    version = metadata.version("creditplus")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"creditplus {version}\n", "")
    with (config.PROJECT_ROOT / "pyproject.toml").open("rb") as f:
        assert tomllib.load(f)["project"]["version"] == version, "pyproject.toml's version changed: make install"
    result = run_cli("platform", "generate", "--help")
    assert result.returncode == 0 and "creditplus platform generate --out" in result.stdout and not result.stderr


def _without_a_default(parser) -> set:
    """Options that cannot have one: flags, and the alternatives of a required choice (``--credential | --uscc``)."""
    alternatives = {id(a) for g in parser._mutually_exclusive_groups if g.required for a in g._group_actions}
    return {id(a) for a in parser._actions if id(a) in alternatives or a.nargs == 0}


@pytest.mark.parametrize("words", COMMANDS, ids=lambda words: " ".join(words) or "creditplus")
def test_every_help_shows_defaults_environment_and_an_example(words, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "100")
    with pytest.raises(SystemExit) as exit:
        cli.build_parser().parse_args([*words, "--help"])
    assert exit.value.code == 0
    text = capsys.readouterr().out
    flat = " ".join(text.split())
    parser = COMMANDS[words]
    for action in parser._actions:
        if not action.option_strings or action.required or id(action) in _without_a_default(parser):
            continue
        if action.default in (None, ""):  # what leaving it out means is said in words
            assert "default" in action.help, action.option_strings
        else:
            assert f"(default: {action.default})" in flat, action.option_strings
    examples = [line.strip() for line in text.splitlines() if line.strip().startswith("creditplus ")]
    assert examples and all(e.startswith(" ".join(("creditplus", *words))) for e in examples), text
    if parser.get_default("target"):  # a command: the variables it reads, from the registry, and runnable examples
        reads = parser.get_default("reads")
        assert set(reads) <= set(config.ENVIRONMENT)
        assert set(re.findall(r"^  (CREDITPLUS_\w+)$", text, re.M)) == set(reads), text
        assert all(config.ENVIRONMENT[name].meaning.replace("`", "")[:30] in flat for name in reads)
        assert "environment:" in text or "reads none" in text
        monkeypatch.setattr(cli, "existing_dir", Path)  # `platform serve --data DIR` of a city not generated here
        for example in examples:
            args = cli.build_parser().parse_args(shlex.split(example)[1:])
            assert args.target == parser.get_default("target"), example


def test_the_environment_registry_is_readmes_table_and_what_the_code_reads():
    from creditplus import access

    readme = (config.PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert config.environment_table() in readme, "README's settings table: paste config.environment_table()"
    sources = "\n".join(p.read_text(encoding="utf-8") for p in (config.PROJECT_ROOT / "src").rglob("*.py"))
    read = set(re.findall(r'environ(?:\.get\(|\[)\s*"(CREDITPLUS_\w+)"', sources))
    read |= set(re.findall(r'^\w+_ENV = "(CREDITPLUS_\w+)"', sources, re.M))
    internal = {"CREDITPLUS_IN_PROCESS"}  # set by creditplus for its own child process
    assert read - internal == set(config.ENVIRONMENT)
    assert access.PASSWORD_ENV in config.ENVIRONMENT


def _on_a_terminal(argv: list[str]) -> tuple[int, str]:
    """Run the command with a pseudo-terminal as stdin, stdout and stderr; (exit status, what it showed)."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "creditplus.cli", *argv], stdin=slave, stdout=slave, stderr=slave,
                            env={**os.environ, "COLUMNS": "120", "TERM": "xterm"})
    os.close(slave)
    shown = b""
    try:
        while select.select([master], [], [], 60)[0]:
            try:
                data = os.read(master, 65536)
            except OSError:  # EIO: every end of the terminal but ours is closed
                break
            if not data:
                break
            shown += data
    finally:
        os.close(master)
    return proc.wait(timeout=60), shown.decode(errors="replace")


def test_generate_shows_progress_on_a_terminal_and_nothing_more_elsewhere(tmp_path):
    argv = ["platform", "generate", "--enterprises", "600", "--years", "1", "--end-date", "2026-11-26", "--out"]
    status, shown = _on_a_terminal([*argv, str(tmp_path / "terminal")])
    assert status == 0, shown
    assert "generating 600 enterprises" in shown and "600/600" in shown, shown
    assert re.search(r"wrote \d+ record versions for 600 enterprises", shown), shown
    piped = run_cli(*argv, str(tmp_path / "piped"))
    assert piped.returncode == 0 and piped.stdout == "", piped.stderr
    assert re.fullmatch(r"creditplus platform: wrote \d+ record versions for 600 enterprises through 2026-11-26 "
                        r"to \S+ in \d+\.\d s\n", piped.stderr), piped.stderr
    for made in (tmp_path / "terminal").iterdir():  # the bar changes no byte of the dataset
        assert made.read_bytes() == (tmp_path / "piped" / made.name).read_bytes(), made.name
