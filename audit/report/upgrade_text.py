"""The upgrade view as text lines (shared by the text and markdown reports)."""

from __future__ import annotations

from typing import List

from audit.compare.upgrade import Upgrade


def upgrade_lines(u: Upgrade, markdown: bool = False) -> List[str]:
    out = [f"{'### ' if markdown else ''}Streams that change with {u.field} ({' -> '.join(u.values)})", ""]
    if markdown:
        out += ["| probe | step | changed | compared | kinds |", "|---|---|---:|---:|---|"]
    for p in u.by_probe:
        kinds = ", ".join(f"{n} {k}" for k, n in sorted(p.kinds.items()))
        if markdown:
            out.append(f"| `{p.probe}` | {p.before} → {p.after} | {p.changed} | {p.compared} | {kinds} |")
        else:
            out.append(f"  {p.probe:<44} {p.before} -> {p.after}  {p.changed:>4} of {p.compared:<4} cases changed"
                       + (f"  ({kinds})" if kinds else ""))
    if not u.by_probe:
        out.append("  no case was run under two consecutive values")
    out.append("")
    for (a, b), fields in u.confounders.items():
        if fields:
            lead = "- " if markdown else "  "
            out.append(f"{lead}note: between {a} and {b} these fields also differ: {', '.join(fields)}")
    if u.nondeterministic:
        out.append(f"{'- ' if markdown else '  '}{len(u.nondeterministic)} nondeterministic case(s) left out")
    return out
