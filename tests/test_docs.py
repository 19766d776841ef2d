"""The README and docs/ agree with the code: the commands table with the CLI's --help, the
environment-field lists with :data:`audit.worker.environment.FIELDS`, and every link with a file.
"""

from __future__ import annotations

import ast
import contextlib
import importlib.util
import io
import re
from pathlib import Path
from types import ModuleType
from typing import Dict, List, Set

import pytest

from audit import cli
from audit.worker import environment

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"

#: Links to documents that other work in progress writes (a row marked "pending" in the table).
#: When the file lands, drop it here; the test says so.
PENDING_DOCS: set = set()
#: Commands the README lists ahead of their landing (their rows say "pending").
PENDING_COMMANDS: set = set()

#: The README's two set-up lines: set up and audit this machine; set up and run the tests.
SETUP = [
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" torch==2.13.0 && python -m audit run',
    'python3 -m venv .venv && . .venv/bin/activate && pip install -e ".[test]" torch==2.13.0 && python -m pytest',
]


def ci_steps() -> str:
    """What .ci/run does after it empties the checkout's .venv, joined as the README writes it."""
    lines = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    steps = [line for line in lines if line and not line.startswith(("#", "set ", "cd ", "rm "))]
    return " && ".join(steps)


def readme() -> str:
    return README.read_text(encoding="utf-8")


# --------------------------------------------------------------------------- the commands table


def table_rows(text: str) -> Dict[str, List[str]]:
    """Subcommand -> the command cells of its rows in the README's commands table."""
    section = text.split("## Commands", 1)[1].split("\n## ", 1)[0]
    rows: Dict[str, List[str]] = {}
    for line in section.splitlines():
        match = re.match(r"\| `python -m audit (\w+)([^`]*)`", line)
        if match:
            rows.setdefault(match.group(1), []).append(match.group(2))
    return rows


def help_text(*argv: str) -> str:
    """What ``python -m audit ARGV --help`` prints (the parser in process: no subprocess)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit):
        cli.build_parser().parse_args([*argv, "--help"])
    return out.getvalue()


def help_commands(text: str) -> Set[str]:
    """The subcommands a top-level --help lists (the indented lines under COMMAND)."""
    after = text.split("COMMAND\n", 1)[-1].split("\n\n", 1)[0] if "COMMAND\n" in text else text
    return set(re.findall(r"^    (\w[\w-]*)(?:\s|$)", after, flags=re.MULTILINE))


def options_of(cells: List[str]) -> Set[str]:
    return {o for cell in cells for o in re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", cell)}


def test_help_lists_the_commands_it_parses() -> None:
    """The help parser below must see every command (else the table test could pass vacuously)."""
    listed = help_commands(help_text())
    assert set(cli.COMMANDS) <= listed, listed


def test_the_commands_table_and_the_cli_list_the_same_commands() -> None:
    table = set(table_rows(readme()))
    commands = help_commands(help_text())
    assert commands - table == set(), "commands missing from the README's table"
    assert table - commands - PENDING_COMMANDS == set(), "the README's table lists commands the CLI lacks"
    landed = PENDING_COMMANDS & commands
    assert not landed, f"{landed} landed: drop them from PENDING_COMMANDS and 'pending' from their rows"


@pytest.mark.parametrize("command", sorted(cli.COMMANDS))
def test_every_option_in_the_table_exists(command: str) -> None:
    cells = table_rows(readme()).get(command, [])
    assert cells, f"no row for {command}"
    known = set(re.findall(r"(?<![\w-])(--[a-z][a-z-]*)", help_text(command)))
    assert options_of(cells) - known == set(), f"the README shows options that 'audit {command}' lacks"


def test_the_table_checker_sees_rows_and_options() -> None:
    text = "\n".join([
        "## Commands", "", "| command | what |", "| --- | --- |",
        "| `python -m audit run [--probe GLOB] [--resume]` | x |",
        "| `nox -s matrix` | y |",
        "| `python -m audit run --x-y` | z |", "", "## Next",
        "| `python -m audit env` | no |", ""])
    rows = table_rows(text)
    assert rows == {"run": [" [--probe GLOB] [--resume]", " --x-y"]}
    assert options_of(rows["run"]) == {"--probe", "--resume", "--x-y"}
    assert help_commands("usage\n\npositional arguments:\n  COMMAND\n    run       audit\n    env\n\noptions:\n"
                         "  -h, --help\n") == {"run", "env"}


# --------------------------------------------------------------------------- README shape and links


def test_the_readme_is_short_and_keeps_the_setup_commands() -> None:
    text = readme()
    assert len(text.splitlines()) <= 200
    for line in SETUP:
        assert f"```bash\n{line}\n```" in text
    assert ci_steps() == SETUP[1]  # CI installs and tests exactly as the README's second line
    assert SETUP[0].rsplit(" && ", 1)[0] == SETUP[1].rsplit(" && ", 1)[0]  # the same install


def _local_links(text: str) -> Set[str]:
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    return {link for link in links if "://" not in link}


def test_every_readme_link_resolves() -> None:
    missing = {link for link in _local_links(readme()) if not (ROOT / link).exists()}
    assert missing - PENDING_DOCS == set()
    landed = {link for link in PENDING_DOCS if (ROOT / link).exists()}
    assert not landed, f"{landed} landed: drop them from PENDING_DOCS and 'pending' from the README"


def test_every_doc_is_linked_from_the_readme() -> None:
    linked = _local_links(readme())
    docs = {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert docs - linked == set(), "docs the README does not link"
    assert "CONTRIBUTING.md" in linked and (ROOT / "CONTRIBUTING.md").exists()


def test_links_between_docs_resolve() -> None:
    for path in [*(ROOT / "docs").glob("*.md"), ROOT / "CONTRIBUTING.md"]:
        for link in _local_links(path.read_text(encoding="utf-8")):
            target = (path.parent / link).resolve()
            assert target.exists() or str(target.relative_to(ROOT)) in PENDING_DOCS, f"{path.name}: {link}"


# --------------------------------------------------------------------------- environment fields


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("environment_fields_under_test",
                                                  ROOT / "scripts" / "environment_fields.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_environment_field_lists_are_generated_from_fields() -> None:
    generator = _generator()
    for path, text in generator.expected().items():
        assert Path(path).read_text(encoding="utf-8") == text, f"run python scripts/environment_fields.py ({path})"


def test_the_generated_lists_name_every_field() -> None:
    generator = _generator()
    fields = {"a_field": "one", "B_SETTING": "two | three"}
    listed = generator.readme_list(fields, {"B_SETTING": "two | three"})
    assert "`a_field`" in listed and "as set: `B_SETTING`" in listed
    table = generator.docs_table(fields, {"B_SETTING": "two | three"})
    assert "| `B_SETTING` | two / three (environment variable, as set) |" in table.splitlines()
    with pytest.raises(SystemExit):
        generator.replace_block("no markers here", "x", "README.md")


def test_every_recorded_field_is_in_the_table() -> None:
    """The worker records no column that FIELDS does not describe (and records every one it does)."""
    captured = environment.capture()
    assert set(captured) - set(environment.FIELDS) == set()
    assert set(environment.FIELDS) - set(captured) == set()



# --------------------------------------------------------------------------- nox sessions


def nox_sessions(source: str) -> Set[str]:
    """Session names the noxfile defines (``@nox.session`` or ``@nox.session(name=...)``)."""
    names: Set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef):
            continue
        for deco in node.decorator_list:
            call = deco if isinstance(deco, ast.Call) else None
            target = call.func if call else deco
            if ast.unparse(target) != "nox.session":
                continue
            named = [k.value for k in (call.keywords if call else []) if k.arg == "name"]
            names.add(str(named[0].value) if named and isinstance(named[0], ast.Constant) else node.name)
    return names


def test_the_readme_lists_every_nox_session() -> None:
    line = readme().split("nox sessions:", 1)[1].split("\n\n", 1)[0]
    listed = set(re.findall(r"`(\w+)`", line))
    defined = nox_sessions((ROOT / "noxfile.py").read_text(encoding="utf-8"))
    assert {"tests", "lint", "matrix", "history"} <= defined
    assert listed == defined


def test_the_session_reader_takes_names_from_the_decorator() -> None:
    source = ("import nox\n@nox.session\ndef a(s): ...\n"
              "@nox.session(name='b', default=False)\n@nox.parametrize('x', [1])\ndef b_cell(s, x): ...\n"
              "@other\ndef c(s): ...\n")
    assert nox_sessions(source) == {"a", "b"}
