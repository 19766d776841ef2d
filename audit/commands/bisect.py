"""``audit bisect``: the first release of a library that changed each stream.

Audits FROM and TO (building each release's matrix cell under .nox/cells, or reusing it),
then bisects the cases that differ: each group of cases that changed together costs about
log2(releases) audits.  Runs that already exist for a release, made the same way (the
committed results/history, earlier bisects under --results), are used instead of auditing
it again (--fresh: never), so only the releases between them are built.  Releases come
from the package index (pip index versions) unless --versions lists them; pre-releases,
yanked releases and releases without wheels for the Python are skipped with their reason.
A stream that changes and changes back between two audited releases is not seen (the
committed history, one run per minor, shows those).

Exit codes: 0 the search finished (changes are the answer, not a failure); 2 usage error
(also: FROM or TO cannot be installed, no package index answered and --versions is missing,
or --versions is empty or unparsable).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from audit.commands._options import add_probe_argument, release_parser


def add_parser(sub: Any) -> None:
    p = release_parser(
        sub,
        "bisect",
        "find the release that changed each stream (builds environments)",
        __doc__,
        "the older release, e.g. 2.0.1",
        "the newer release, or 'latest' (the newest on the index)",
    )
    add_probe_argument(p, "probes to audit (default: the library's own, e.g. 'torch*')")
    p.add_argument(
        "--probes-from",
        action="append",
        default=[],
        metavar="MODULE",
        help="also audit the probes of this importable module (repeatable)",
    )
    p.add_argument(
        "--python",
        metavar="X.Y",
        help="the Python of the cells (default: one that suits both ends)",
    )
    p.add_argument(
        "--versions",
        metavar="V1,V2,...",
        help="the releases to search, instead of the package index",
    )
    p.add_argument(
        "--results",
        default="results/bisect",
        metavar="DIR",
        help="where run files go (default: %(default)s)",
    )
    p.add_argument(
        "--remove-cells",
        action="store_true",
        help="delete each environment this bisect built after its audit",
    )
    p.add_argument(
        "--history",
        default="results/history",
        metavar="DIR",
        help="earlier runs to reuse for the releases they cover (default: %(default)s)",
    )
    p.add_argument(
        "--fresh",
        action="store_true",
        help="reuse no earlier run: audit every release the search needs",
    )


def execute(args: argparse.Namespace) -> int:
    from audit.history import bisect, releases, render
    from audit.runner import matrix

    if args.versions is not None:  # before anything is built: '' is a mistake, not "ask the index"
        releases.parse_list(args.versions)
    if args.python:
        matrix.check_version("python", args.python)
    request = bisect.Request(
        args.library,
        args.low,
        args.high,
        args.probe,
        args.probes_from,
        args.python,
        args.versions,
        args.results,
        args.remove_cells,
        args.fresh,
        args.history,
    )
    outcome = bisect.run(request, log=lambda line: print(line, file=sys.stderr, flush=True))
    sys.stdout.write(render.bisect_json(outcome) if args.json else render.bisect_text(outcome))
    return 0
