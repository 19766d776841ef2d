"""``audit platform aarch64``: build (or reuse) an emulated arm64 interpreter; print its path.

The path is an interpreter for ``run --python``, ``sweep --python`` and ``explore --python``;
``nox -s arm64`` audits each CPU class of ``AUDIT_QEMU_CPU`` with it (the matrix's cells
are x86 virtualenvs).  ``QEMU_CPU`` (or ``sweep --axis QEMU_CPU=...``) picks the CPU class.
Needs a Linux host, root, debootstrap and qemu-user-static (see docs/arm.md).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    from audit.commands._options import command_parser

    p = command_parser(
        sub, "platform", "build an emulated aarch64 interpreter for --python (docs/arm.md)", __doc__
    )
    p.add_argument("arch", choices=["aarch64"], help="the architecture to emulate")


def execute(args: argparse.Namespace) -> int:
    from audit.runner import arm64

    wrapper = arm64.build(log=lambda line: print(line, file=sys.stderr, flush=True))
    print(wrapper)
    return 0
