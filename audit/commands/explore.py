"""``audit explore``: the smallest input whose result differs, and the shape of the region
around it.

hypothesis draws the probe's parameters from its declared search domains
(``@probe(..., search={"size": integers(1, 10**7)})``, or ``--param``), runs each example in
persistent workers (one per value of ``--axis``, or one worker comparing an ``--invariance``
parameter's value with its reference), and shrinks a differing example to the smallest.
The answer states the structure: the smallest difference (kind, ULP), the largest region
searched without one, the rate of differences beyond it, or that they are scattered.

Exit status: 0 no difference found, 1 a difference, 2 usage error, 3 cannot tell (every
example errored, or a worker did not get the setting it asked for).
"""

from __future__ import annotations

import argparse
import random
from typing import Any

from audit.commands._options import (
    add_probes_from_argument,
    add_python_argument,
    add_timeout_arguments,
    check_python,
    command_parser,
    probe_sources,
    seconds_argument,
)

EXIT_CANNOT_TELL = 3


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive whole number, not {text!r}")
    return value


def add_parser(sub: Any) -> None:
    p = command_parser(
        sub, "explore", "search a probe's inputs for the smallest one that differs", __doc__
    )
    p.add_argument("probe", metavar="PROBE", help="probe key or id (see 'python -m audit list')")
    how = p.add_mutually_exclusive_group(required=True)
    how.add_argument(
        "--axis", metavar="NAME=A,B", help="compare the settings of one sweep axis (threads=1,2)"
    )
    how.add_argument(
        "--invariance",
        metavar="PARAM",
        help="compare the probe's invariance parameter with its reference, in one worker",
    )
    p.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=RANGE",
        help="search NAME in LO..HI (or A,B,C), or hold it at a value (repeatable)",
    )
    budget = p.add_mutually_exclusive_group()
    budget.add_argument(
        "--examples", type=_count, default=100, metavar="N", help="examples to try (default 100)"
    )
    budget.add_argument(
        "--time", type=seconds_argument, metavar="S", help="search for S seconds instead"
    )
    p.add_argument(
        "--seed",
        type=int,
        metavar="S",
        help="hypothesis seed, to replay a search (default: random)",
    )
    p.add_argument("--json", action="store_true", help="the answer as JSON (docs/explore.md)")
    add_python_argument(p, "interpreter whose environment is audited")
    add_timeout_arguments(
        p, 120.0, "seconds one example may run in a worker (default 120)", argparse.SUPPRESS
    )
    add_probes_from_argument(p, catalogue=False)


def execute(args: argparse.Namespace) -> int:
    from audit.explore import render
    from audit.explore.session import explore

    check_python(args.python)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    answer = explore(args, probe_sources(args), seed)
    print(render.as_json(answer) if args.json else render.as_text(answer))
    verdict = answer.structure.verdict
    if verdict == "inconclusive":
        return EXIT_CANNOT_TELL
    return 0 if verdict == "no-difference" else 1
