"""``audit env``: the environment fields of this interpreter, as a run would record them."""

from __future__ import annotations

import argparse
import json
from typing import Any


def add_parser(sub: Any) -> None:
    p = sub.add_parser("env", help="print this machine's environment fields", description=__doc__)
    p.add_argument("--json", action="store_true", help="as a JSON object")


def execute(args: argparse.Namespace) -> int:
    from audit.worker.environment import FIELDS, capture
    from audit.worker.main import import_libraries

    import_libraries()
    env = capture()
    if args.json:
        print(json.dumps(env, indent=2, sort_keys=False))
        return 0
    width = max(map(len, FIELDS))
    for name in FIELDS:
        value = env.get(name)
        print(f"{name:<{width}}  {'-' if value is None else value}")
    return 0
