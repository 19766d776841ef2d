"""``compare --markdown``: a summary for a CI job page (GitHub step summary and the like).

The answer first (one table row per probe that differs, one line for the rest), the
per-case table only with ``--details``.  Every cell is made printable (control characters
escaped), pipes and brackets escaped and HTML made inert.
"""

from __future__ import annotations

from typing import List

from audit.compare.judgements import shown_verdict
from audit.compare.model import Finding
from audit.report import phrases
from audit.report.escape import lines, printable
from audit.report.text import counts_line, headline, match_counts, rest_lines, status_words
from audit.report.view import ProbeSummary, View, both_values, varies_with

MAX_ROWS = 100


def _cell(text: object) -> str:
    """Markdown table cell: control characters escaped, pipes and brackets escaped, HTML made
    inert."""
    return (
        printable(text)
        .replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("[", "\\[")
        .replace("]", "\\]")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
    )


def _code(text: object) -> str:
    """An inline code span that survives backticks in the text."""
    body = printable(text).replace("|", "\\|")
    return f"`` {body} ``" if "`" in body else f"`{body}`"


def _paren(text: str) -> str:
    return f"({text})" if text else ""


def _probe_row(p: ProbeSummary) -> str:
    mark = "✓ " if p.expected and not p.unexpected else ""
    name = phrases.probe_name(p)
    count = " ".join(x for x in (phrases.counts(p), _paren(phrases.expected(p))) if x)
    return (
        f"| {mark}{_code(name)}{_cell(phrases.own_family(p))} | {_cell(count)} | "
        f"{_cell(phrases.kinds(p))} | "
        f"{_cell(phrases.which(p))} | {_cell(p.why)} |"
    )


def _row(f: Finding) -> str:
    how = "; ".join(x for x in (phrases.how(f), phrases.where(f.measured)) if x)
    message = (
        f"error: {f.messages[0].splitlines()[0][:160]}" if f.messages and f.messages[0] else ""
    )
    why = "; ".join(
        x
        for x in (
            f.explanation,
            message,
            varies_with(f),
            both_values(f.axes_values),
            phrases.divergence(f.first_divergence) if f.first_divergence else "",
            *(phrases.nearest(s) for s in f.streams if s.nearest),
        )
        if x
    )
    why += f" — expected: {f.expected}" if f.expected else ""
    return (
        f"| {'' if f.unexpected else '✓ '}{_cell(shown_verdict(f))} | {_code(f.probe_key)} | "
        f"{_cell(f.params)} | {_cell(how)} | {_cell(why)} |"
    )


def render(v: View, details: bool = False) -> str:
    c = v.comparison
    unexpected = len(c.unexpected)
    out: List[str] = ["## determinism-audit compare", ""]
    if c.upgrade is not None:
        from audit.report.upgrade_text import upgrade_lines

        out += upgrade_lines(c.upgrade, markdown=True)
    else:
        out += [
            f"**{_cell(headline(v))}**"
            + (f" — **{unexpected} unexpected**" if unexpected else f" — {status_words(c)}"),
            "",
        ]
        if v.changed:
            out += ["| probe | cases | how | which cases | why |", "|---|---|---|---|---|"]
            out += [_probe_row(p) for p in v.changed]
            out.append("")
        out += [f"- {_cell(line.strip())}" for line in rest_lines(v)]
    out += [
        "",
        f"Compared {phrases.plural(c.rows, 'row')} from {phrases.plural(c.runs, 'run')}. "
        f"Cases: {counts_line(c)}.",
    ]
    if c.baseline:
        out += ["", f"Baseline: {_cell(c.baseline)}. Against it: {match_counts(c)}."]
    rows = v.listed
    if details and rows:
        out += ["", "| verdict | probe | case | difference | why |", "|---|---|---|---|---|"]
        out += [_row(f) for f in rows[:MAX_ROWS]]
        if len(rows) > MAX_ROWS:
            out.append(f"\n… and {len(rows) - MAX_ROWS} more (see the JSON or HTML report).")
    if c.skipped:
        out += ["", "Skipped files:", ""] + [
            f"- {_code(s.path)}: {_cell(s.reason)}" for s in c.skipped
        ]
    if c.notes:
        out += ["", "Notes:", ""] + [f"- {_cell(n)}" for n in c.notes]
    if c.expectation_notes:
        out += ["", "Expectations:", ""] + [f"- {_cell(n)}" for n in c.expectation_notes]
    return lines(out)
