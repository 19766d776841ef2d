"""``audit list``: the probe catalogue, without importing any library under test."""

from __future__ import annotations

import argparse
from typing import Any

from audit.commands._options import (
    add_probe_argument,
    add_probes_from_argument,
    probe_sources,
    seconds_argument,
    sizes_argument,
)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("list", help="show the probe catalogue", description=__doc__)
    add_probe_argument(p, "only probes matching GLOB")
    p.add_argument("--cases", action="store_true", help="list every case with its parameters")
    p.add_argument(
        "--sizes",
        type=sizes_argument,
        default=("default",),
        metavar="PANEL[,PANEL]",
        help="size panels to count: default, large, or both ('default,large')",
    )
    add_probes_from_argument(p)
    p.add_argument(
        "--startup-timeout",
        type=seconds_argument,
        default=120.0,
        metavar="S",
        help="seconds the --probes-from modules may take to import (default 120)",
    )


def execute(args: argparse.Namespace) -> int:
    import audit.probes  # noqa: F401
    from audit import registry, user_probes

    sources = probe_sources(args)
    # in this interpreter (run asks the audited one), within the start-up timeout
    loaded = user_probes.load_within(sources, args.startup_timeout)
    theirs = [key for source in sources for key in loaded.get(source, [])]
    probes = registry.select(args.probe, theirs if sources and not args.catalogue else None)
    sizes = registry.parse_sizes(",".join(args.sizes))
    total = shown = 0
    for key, p in probes.items():
        cases = p.cases(registry.DEFAULT_SEEDS, sizes)
        if not cases:  # no case in these size panels
            continue
        shown += 1
        total += len(cases)
        req = p.requirement
        needs = (
            f"{req.library}>={req.min_version}"
            if req.library and req.min_version
            else (req.library or "python")
        )
        print(f"{key:<52} {p.kind:<9} {p.device:<4} {len(cases):>4} cases  {needs}")
        if args.cases:
            for case in cases:
                print(f"    {case.key}  {case.params_json}")
    panels = "" if sizes == registry.DEFAULT_SIZES else f", sizes {','.join(args.sizes)}"
    print(f"{shown} probes, {total} cases (default seed panel{panels})")
    return 0
