"""Regenerate docs/stream-changes.md from the committed runs in results/history/.

    python scripts/stream_changes.py            # writes docs/stream-changes.md
    python scripts/stream_changes.py --check    # exit 1 if the committed file is out of date
    python scripts/stream_changes.py --stdout   # print instead of writing
"""

from __future__ import annotations

import argparse
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from audit.history import document  # noqa: E402

DOC = os.path.join(ROOT, "docs", "stream-changes.md")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--history", default=os.path.join(ROOT, "results", "history"), metavar="DIR")
    p.add_argument("--output", default=DOC, metavar="FILE")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--check", action="store_true", help="compare with the committed file instead of writing")
    mode.add_argument("--stdout", action="store_true", help="print the document")
    args = p.parse_args()
    text = document.render_document(args.history)
    if args.stdout:
        sys.stdout.write(text)
        return 0
    if args.check:
        try:
            with open(args.output, encoding="utf-8") as f:
                current = f.read()
        except OSError:
            current = ""
        if current != text:
            print(f"{args.output} is out of date: run python scripts/stream_changes.py")
            return 1
        return 0
    document.write(args.output, args.history)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
