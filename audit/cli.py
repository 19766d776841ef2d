"""The command line: ``python -m audit COMMAND``; one module per command in audit.commands.

Each command module has ``add_parser(subparsers)`` and ``execute(args) -> int`` (the parser
built here calls it), and imports what it needs inside ``execute``, so ``--help`` imports
neither torch nor pandas.
An :class:`~audit.errors.AuditError` becomes one line on stderr and its exit code (2 for
usage errors); argparse's own usage errors exit 2 as well.  A reader that closes the pipe
early (``python -m audit list | head -1``) ends the command quietly: no traceback, exit 1
(the Python documentation's way: stdout is pointed at devnull so the exit flush stays quiet).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from typing import Optional, Sequence

from audit import __version__
from audit.errors import AuditError

#: Command name -> module under audit.commands, in the order --help lists them.
COMMANDS = {
    "run": "run",
    "list": "list_probes",
    "env": "env",
    "compare": "compare",
    "sweep": "sweep",
    "explore": "explore",
    "compact": "compact",
    "bisect": "bisect",
    "advise": "advise",
    "platform": "platform",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m audit",
        description="Audit where seeded random streams and ops stop being reproducible.",
    )
    parser.add_argument("--version", action="version", version=f"determinism-audit {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name, module_name in COMMANDS.items():
        command = importlib.import_module(f"audit.commands.{module_name}")
        command.add_parser(sub)
        sub.choices[name].set_defaults(execute=command.execute)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    try:  # parsing too: a path option's check raises AuditError (one line, not a usage block)
        args = build_parser().parse_args(list(argv) if argv is not None else None)
        code = int(args.execute(args))
        sys.stdout.flush()  # a closed pipe shows here, not in the interpreter's exit flush
        return code
    except BrokenPipeError:
        _quiet_stdout()
        return 1
    except AuditError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _quiet_stdout() -> None:
    """Point stdout at devnull: the reader has gone, and Python's exit flush must not complain."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    except (OSError, ValueError):  # stdout without a file descriptor (a test's capture)
        pass
