"""The terminal report: what is unexpected first, then counts by verdict.

Plain aligned text, no colour: it goes to CI logs as often as to terminals.
"""

from __future__ import annotations

from typing import Dict, List

from audit.compare.model import Comparison, Finding, Match, Verdict

MAX_LISTED = 200  # findings listed in full; the rest are counted


def _fmt_ulp(f: Finding) -> str:
    if f.max_ulp is None:
        return ""
    return f"max {f.max_ulp:g} ULP, {f.fraction_differing:.0%} of sampled elements differ"


def finding_lines(f: Finding) -> List[str]:
    """A finding as a heading line and indented details."""
    kind = f.match.value if f.match else f.verdict.value
    head = f"{kind.upper():<17} {f.probe_key} [{f.params}]"
    if f.device != "cpu" and "@" not in f.probe_key:
        head += f" on {f.device}"
    lines = [head]
    detail = "; ".join(x for x in (f.difference.value if f.difference else "", _fmt_ulp(f)) if x)
    if f.explanation:
        lines.append(f"    {f.explanation}")
    if detail:
        lines.append(f"    {detail}")
    if f.axes[1:]:
        lines.append(f"    also explained by: {', '.join(f.axes[1:])}")
    for s in f.streams if f.verdict != Verdict.NONDETERMINISTIC else f.streams[:3]:
        where = ", ".join(f"{k}={'/'.join(v)}" for k, v in _stream_fields(f, s.environment).items())
        known = "" if s.known is None else ("  known: " + (s.reference or "") if s.known else "  NEW")
        lines.append(f"    {s.fingerprint[:12]}  {s.run_count:>5} run(s)  {where}{known}")
    lines.extend(f"    error: {m.splitlines()[0][:160] if m else ''}" for m in f.messages)
    lines.extend(f"    note: {n}" for n in f.notes)
    if f.expected:
        lines.append(f"    expected: {f.expected}")
    return lines


def _stream_fields(f: Finding, environment: Dict[str, List[str]]) -> Dict[str, List[str]]:
    """The fields a stream line shows: those of the best explanation when there is one (the
    rest is in --json and --html), every varying field when nothing explains the split."""
    best = set(f.axes[0].split("+")) if f.axes else set()
    return {k: v for k, v in environment.items() if k in best} or dict(environment)


def listed(c: Comparison) -> List[Finding]:
    """Findings worth a line: all but identical ones (known ones in baseline mode), unexpected first."""
    out = [f for f in c.findings if f.verdict != Verdict.IDENTICAL or f.match not in (None, Match.KNOWN)]
    return sorted(out, key=lambda f: (not f.unexpected, list(Verdict).index(f.verdict)))


def match_counts(c: Comparison) -> str:
    counts = {m.value: 0 for m in Match}
    for f in c.findings:
        if f.match is not None:
            counts[f.match.value] += 1
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n)


def counts_line(c: Comparison) -> str:
    counts = c.counts()
    return ", ".join(f"{n} {name}" for name, n in counts.items() if n or name in ("identical", "divergent"))


def render(c: Comparison) -> str:
    shown = listed(c)
    out = [f"compared {c.rows} rows from {c.runs} runs" + (" (cross-device)" if c.cross_device else "")]
    if c.baseline:
        out.append(f"baseline: {c.baseline}")
    out.append("")
    for f in shown[:MAX_LISTED]:
        out.extend(finding_lines(f))
    if len(shown) > MAX_LISTED:
        out.append(f"... and {len(shown) - MAX_LISTED} more (use --json for all)")
    if shown:
        out.append("")
    if c.upgrade is not None:
        from audit.report.upgrade_text import upgrade_lines

        out.extend(upgrade_lines(c.upgrade))
        out.append("")
    out.extend(f"skipped {s.path}: {s.reason}" for s in c.skipped)
    out.extend(f"note: {n}" for n in c.notes)
    out.extend(f"expectation {n}" for n in c.expectation_notes)
    out.append(f"cases: {counts_line(c)}")
    if c.baseline:
        out.append(f"against the baseline: {match_counts(c)}")
    unexpected = len(c.unexpected)
    out.append(f"{unexpected} unexpected finding(s)" if unexpected else "nothing unexpected")
    return "\n".join(out) + "\n"
