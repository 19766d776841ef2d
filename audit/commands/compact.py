"""``audit compact SRC... DEST``: merge many run files into one file per month.

Every run keeps its id, environment and metadata, and compare reads compacted and
uncompacted files alike (a run found in both counts once).  Safe to repeat (a month already
compacted is left alone; sources with nothing left to compact exit 0) and to interrupt (no
partial file is left under a final name).  Never loses a row: copies are recognised by
content, not by run id, and a file is deleted only when every one of its rows is in DEST's
month files; sources (even inside DEST) only with --remove-sources.
Exit codes: 0 done; 2 usage error; 3 some source files were skipped (named: unreadable, not a
regular file, or not a copy of a run read elsewhere).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any


def add_parser(sub: Any) -> None:
    from audit.commands._options import (
        add_memory_limit_argument,
        add_run_files_argument,
        command_parser,
        location_argument,
    )

    p = command_parser(sub, "compact", "merge many run files into one file per month", __doc__)
    add_run_files_argument(p, "sources", "SRC")
    p.add_argument(
        "dest", metavar="DEST", type=location_argument, help="directory for the month files"
    )
    p.add_argument(
        "--remove-sources",
        action="store_true",
        help="delete each source file once every run it holds is in DEST",
    )
    add_memory_limit_argument(p)


def execute(args: argparse.Namespace) -> int:
    from audit.store.compact import compact

    done = compact(args.sources, args.dest, args.remove_sources, args.memory_limit)
    for path in done.written:
        print(f"wrote {path}")
    for s in done.skipped:
        print(f"skipped {s.path}: {s.reason}")
    for note in done.notes:
        print(f"note: {note}")
    removed = f"; removed {len(done.sources_removed)} source file(s)" if args.remove_sources else ""
    replaced = f"; replaced {len(done.superseded)} older month file(s)" if done.superseded else ""
    print(
        f"{done.runs} run(s) in {len(done.written)} new month file(s){replaced}{removed}"
        if done.written
        else f"nothing new to compact in {args.dest}{removed}",
        file=sys.stdout,
    )
    return 3 if done.skipped else 0
