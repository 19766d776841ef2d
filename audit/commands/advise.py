"""``audit advise``: what changes between two releases, from the committed history, at once.

Reads results/history/<library>/ (one run per minor release, its latest patch) and builds
nothing.  The history is the one beside this installation (results/history next to the audit
package, wherever advise is started from) unless --history names another; its files must
match its MANIFEST.json (release list and sha256 of each file), or advise refuses.  A version
inside the history's span is read as its minor's audited release (2.4.0 as 2.4.1, with a
note); a version outside it is replaced by the nearest end, with a note and the
bisect/upgrade commands that answer exactly.

Exit codes: 0 answered; 2 usage error (neither end is in the history, a minor inside its
span is missing, or a history file is missing, added or altered against the manifest);
3 answered in part: an end lies outside the history.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from audit.commands._options import release_parser


def add_parser(sub: Any) -> None:
    p = release_parser(
        sub,
        "advise",
        "which streams change between two releases (from results/history)",
        __doc__,
        "the release you are on, e.g. 2.4.1",
        "the release you consider, or 'latest'",
    )
    p.add_argument(
        "--history",
        metavar="DIR",
        help="the history (default: results/history beside the installed audit package)",
    )


def execute(args: argparse.Namespace) -> int:
    from audit.history import advise, manifest, render

    advice = advise.advise(args.library, args.low, args.high, manifest.locate(args.history))
    if args.history:
        advice.history = args.history
    sys.stdout.write(render.advice_json(advice) if args.json else render.advice_text(advice))
    return 3 if advice.partial else 0
