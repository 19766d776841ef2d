"""``compare --markdown``: a summary for a CI job page (GitHub step summary and the like)."""

from __future__ import annotations

from typing import List

from audit.compare.model import Comparison, Finding
from audit.report.text import counts_line, listed, match_counts

MAX_ROWS = 100


def _cell(text: str) -> str:
    """Markdown table cell: pipes escaped, newlines flattened, HTML made inert."""
    return " ".join(str(text).split()).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def _row(f: Finding) -> str:
    kind = f.match.value if f.match else f.verdict.value
    diff = f.difference.value if f.difference else ""
    if f.max_ulp is not None:
        diff += f" (max {f.max_ulp:g} ULP)"
    why = f.explanation + (f" — expected: {f.expected}" if f.expected else "")
    return (f"| {'' if f.unexpected else '✓ '}{_cell(kind)} | `{_cell(f.probe_key)}` | {_cell(f.params)} | "
            f"{_cell(diff)} | {_cell(why)} |")


def render(c: Comparison) -> str:
    unexpected = len(c.unexpected)
    out: List[str] = ["## determinism-audit compare", ""]
    out.append(f"**{unexpected} unexpected finding(s)**" if unexpected else "**Nothing unexpected.**")
    out += ["", f"Compared {c.rows} rows from {c.runs} runs. Cases: {counts_line(c)}."]
    if c.baseline:
        out += ["", f"Baseline: {_cell(c.baseline)}. Against it: {match_counts(c)}."]
    rows = listed(c)
    if rows:
        out += ["", "| verdict | probe | case | difference | explanation |", "|---|---|---|---|---|"]
        out += [_row(f) for f in rows[:MAX_ROWS]]
        if len(rows) > MAX_ROWS:
            out.append(f"\n… and {len(rows) - MAX_ROWS} more (see the JSON or HTML report).")
    if c.upgrade is not None:
        from audit.report.upgrade_text import upgrade_lines

        out += [""] + upgrade_lines(c.upgrade, markdown=True)
    if c.skipped:
        out += ["", "Skipped files:", ""] + [f"- `{_cell(s.path)}`: {_cell(s.reason)}" for s in c.skipped]
    if c.notes:
        out += ["", "Notes:", ""] + [f"- {_cell(n)}" for n in c.notes]
    if c.expectation_notes:
        out += ["", "Expectations:", ""] + [f"- {_cell(n)}" for n in c.expectation_notes]
    return "\n".join(out) + "\n"
