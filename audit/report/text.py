"""The terminal report: the answer first, one line per probe, then (``--details``) every case.

Plain aligned text, no colour: it goes to CI logs as often as to terminals.  Every line
goes through :func:`audit.report.escape.printable`, so nothing from a run file can drive
the terminal.
"""

from __future__ import annotations

import textwrap
from typing import List

from audit.compare.judgements import shown_verdict
from audit.compare.model import Comparison, Finding, Match, Verdict
from audit.report import phrases
from audit.report.escape import lines
from audit.report.view import ProbeSummary, View, both_values, varies_with

MAX_LISTED = 200  # findings listed in full with --details; the rest are counted
NAME_WIDTH = 46


def render(v: View, details: bool = False) -> str:
    c = v.comparison
    if c.upgrade is not None:
        from audit.report.upgrade_text import upgrade_lines

        out = upgrade_lines(c.upgrade) + [""]
    else:
        out = summary_lines(v) + [""]
    if details:
        out += detail_lines(v.listed)
    elif v.listed:
        out += ["(one block per case: --details; everything: --json or --html FILE)", ""]
    out += footer_lines(c)
    return lines(out)


# --------------------------------------------------------------------------- summary


def headline(s: View) -> str:
    """The answer in one line: how many probes and cases differ (from the baseline), out of how
    many."""
    c = s.comparison
    compared, changed = s.compared_cases, s.changed_cases
    against = " from the baseline" if c.baseline else ""
    if not c.compared:
        return nothing_compared(s)
    if not changed:
        what = (
            "every case reproduces the baseline"
            if c.baseline
            else "no case differs between the runs"
        )
        return (
            f"{what}: {phrases.plural(compared, 'case')} "
            f"of {phrases.plural(s.compared_probes, 'probe')}"
        )
    breakdown = ", ".join(f"{n} {v}" for v, n in s.changed_verdicts().items())
    return (
        f"{len(s.changed)} probe{'s' if len(s.changed) > 1 else ''} "
        f"differ{'s' if len(s.changed) == 1 else ''}"
        f"{against}: {changed} of {compared} cases ({breakdown})"
    )


def nothing_compared(s: View) -> str:
    """The headline of a compare that compared no case: say what could not be compared (a
    gate fails closed, it never reads this as a pass)."""
    c = s.comparison
    reasons = (
        [f"{phrases.plural(len(c.unsupported), 'case')} unsupported in every run"]
        if c.unsupported
        else []
    )
    lost = sum(f.match == Match.NO_LONGER_RUNS for f in c.findings)
    if lost:
        reasons.append(f"{lost} the reference ran ok no longer run here")
    for verdict, (_, cases) in s.quiet_counts().items():
        reasons.append(f"{phrases.plural(cases, 'case')} {phrases.QUIET_MEANING[verdict]}")
    failed = sum(f.verdict == Verdict.ERROR and f.match != Match.NO_LONGER_RUNS for f in c.findings)
    if failed:
        reasons.append(f"{phrases.plural(failed, 'case')} failed")
    return "nothing could be compared: " + ("; ".join(reasons) or "no case")


def status_words(c: Comparison) -> str:
    """The gate's answer: 'N unexpected finding(s)', 'nothing compared: ...' or 'nothing
    unexpected'."""
    unexpected = len(c.unexpected)
    if unexpected:
        return f"{unexpected} unexpected finding(s)"
    if not c.compared:
        return "nothing compared: the gate fails closed (exit 1)"
    return "nothing unexpected"


def summary_lines(s: View) -> List[str]:
    c = s.comparison
    out = [
        headline(s),
        f"  {phrases.plural(c.runs, 'run')}, {phrases.plural(c.rows, 'row')}"
        + (" (cross-device)" if c.cross_device else "")
        + (f"; baseline: {c.baseline}" if c.baseline else ""),
    ]
    out += [f"  {note}" for note in s.environment_notes] + [""]
    width = min(
        NAME_WIDTH, max((len(p.probe) + len(phrases.own_family(p)) for p in s.changed), default=0)
    )
    out += [line for p in s.changed for line in probe_lines(p, width)]
    return out + rest_lines(s)


def probe_line(p: ProbeSummary, width: int = NAME_WIDTH) -> str:
    """One probe on one line: name, how many cases, how they differ, which cases, why."""
    parts = [x for x in (phrases.kinds(p), phrases.which(p), p.why) if x]
    return f"  {_name(p):<{width}}  {phrases.counts(p):<20}  " + "  ·  ".join(parts) + _mark(p)


def _name(p: ProbeSummary) -> str:
    return phrases.probe_name(p) + phrases.own_family(p)


def probe_lines(p: ProbeSummary, width: int = NAME_WIDTH) -> List[str]:
    """One probe within :data:`MAX_WIDTH` characters: one line when it fits; else the name,
    counts and how on the first line (the how on its own line when it does not fit), then the
    cases and the why on indented continuation lines."""
    line = probe_line(p, width)
    if len(line) <= MAX_WIDTH:
        return [line]
    name = _name(p)
    first = f"  {name:<{width}}  {phrases.counts(p):<20}  {phrases.kinds(p)}".rstrip()
    rest = [
        f"which: {phrases.which(p)}" if phrases.which(p) else "",
        f"why: {p.why}" if p.why else "",
    ]
    if len(first) > MAX_WIDTH:
        first = f"  {name:<{width}}  {phrases.counts(p)}"
        rest.insert(0, f"how: {phrases.kinds(p)}")
    out = [first]
    for part in (x for x in rest if x):
        out += textwrap.wrap(
            CONTINUATION + part,
            MAX_WIDTH,
            subsequent_indent=CONTINUATION + "  ",
            break_long_words=False,
            break_on_hyphens=False,
        )
    out[-1] += _mark(p)
    return out


def _fit(line: str) -> List[str]:
    """A detail line within MAX_WIDTH characters: wrapped at spaces, continuation lines indented
    two more than the line (a single word longer than the width stays whole)."""
    if len(line) <= MAX_WIDTH:
        return [line]
    indent = " " * (len(line) - len(line.lstrip()) + 2)
    return textwrap.wrap(
        line, MAX_WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False
    ) or [line]


CONTINUATION = " " * 6
MAX_WIDTH = 120


def _mark(p: ProbeSummary) -> str:
    return f"  ({phrases.expected(p)})" if p.expected else ""


def rest_lines(s: View) -> List[str]:
    """One line for the unchanged probes, one per quiet verdict, one for unsupported cases."""
    c = s.comparison
    what = "reproduce the baseline" if c.baseline else "unchanged"
    out = [
        f"  {phrases.plural(len(s.unchanged), 'probe')}, "
        f"{phrases.plural(s.unchanged_cases(), 'case')}: {what}"
    ]
    for verdict, (probes, cases) in s.quiet_counts().items():
        out.append(
            f"  {phrases.plural(probes, 'probe')}, {phrases.plural(cases, 'case')}: "
            f"{phrases.QUIET_MEANING[verdict]}"
        )
    if c.unsupported:
        out.append(f"  {phrases.plural(len(c.unsupported), 'case')} unsupported in every run")
    return out


# --------------------------------------------------------------------------- details


def detail_lines(shown: List[Finding]) -> List[str]:
    """One block per listed finding (:attr:`audit.report.view.View.listed`), the first
    MAX_LISTED."""
    out = [part for f in shown[:MAX_LISTED] for line in finding_lines(f) for part in _fit(line)]
    if len(shown) > MAX_LISTED:
        out.append(f"... and {len(shown) - MAX_LISTED} more (use --json for all)")
    return out + ([""] if shown else [])


def finding_lines(f: Finding) -> List[str]:
    """A finding as a heading line and indented details."""
    head = f"{shown_verdict(f).upper():<17} {f.probe_key} [{f.params}]"
    if f.device != "cpu" and "@" not in f.probe_key:
        head += f" on {f.device}"
    out = [head]
    out += [f"    {x}" for x in (f.explanation, varies_with(f), both_values(f.axes_values)) if x]
    detail = "; ".join(x for x in (phrases.how(f), phrases.where(f.measured)) if x)
    if detail:
        out.append(f"    {detail}")
    if f.first_divergence:
        out.append(f"    {phrases.divergence(f.first_divergence)}")
    if f.axes[1:] and not f.axes_values:
        out.append(f"    also explained by: {', '.join(f.axes[1:])}")
    for s in f.streams if f.verdict != Verdict.NONDETERMINISTIC else f.streams[:3]:
        where = phrases.stream_where(f, s)
        known = (
            "" if s.known is None else ("  known: " + (s.reference or "") if s.known else "  NEW")
        )
        variance = (
            ""
            if s.invariant is None
            else (
                "  invariant"
                if s.invariant
                else f"  {f.varies_with or 'varies'}: {', '.join(s.variant_values)} differ"
            )
        )
        out.append(f"    {s.fingerprint[:12]}  {s.run_count:>5} run(s)  {where}{variance}{known}")
        if s.nearest is not None:
            out.append(f"        {phrases.nearest(s)}")
    out += [f"    error: {m.splitlines()[0][:160] if m else ''}" for m in f.messages]
    out += [f"    note: {n}" for n in f.notes]
    if f.expected:
        out.append(f"    expected: {f.expected}")
    return out


# --------------------------------------------------------------------------- footer


def match_counts(c: Comparison) -> str:
    counts = {m.value: 0 for m in Match}
    for f in c.findings:
        if f.match is not None:
            counts[f.match.value] += 1
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n)


def counts_line(c: Comparison) -> str:
    counts = c.counts()
    return ", ".join(
        f"{n} {name}" for name, n in counts.items() if n or name in ("identical", "divergent")
    )


def footer_lines(c: Comparison) -> List[str]:
    out = [f"skipped {s.path}: {s.reason}" for s in c.skipped]
    out += [f"note: {n}" for n in c.notes]
    out += [f"expectation {n}" for n in c.expectation_notes]
    out.append(f"cases: {counts_line(c)}")
    if c.baseline:
        out.append(f"against the baseline: {match_counts(c)}")
    if c.upgrade is not None:
        from audit.report.upgrade_text import answer

        out.append(answer(c.upgrade))
        return out
    out.append(status_words(c))
    return out
