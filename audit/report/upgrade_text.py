"""The upgrade view in words: what changes first, then what each kind means (text and markdown).

``compare --upgrade FIELD`` (and therefore ``nox -s upgrade`` and a sweep over versions)
opens with the answer: per step of FIELD, the probes whose streams change, each with the
case parameters that separate the changed cases, the kinds and the largest drift; one line
for everything unchanged; and, in the header, any other field that differs between the two
sides (a CUDA build against a ``+cpu`` build, another numpy), since a change may be theirs.
"""

from __future__ import annotations

from collections import Counter
from typing import List, Tuple

from audit.compare.model import Difference, ProbeChanges, UpgradeView
from audit.report.phrases import MEANING, drift_bound, plural

NAME_WIDTH = 46


def step_headline(u: UpgradeView, step: Tuple[str, str]) -> str:
    probes = [p for p in u.by_probe if (p.before, p.after) == step]
    changed = [p for p in probes if p.changed]
    cases = sum(p.changed for p in changed)
    compared = sum(p.compared for p in probes)
    head = f"{u.field} {step[0]} -> {step[1]}: "
    if not changed:
        return (
            head + f"no stream changes ({plural(compared, 'case')} "
            f"of {plural(len(probes), 'probe')} compared)"
        )
    # what the count counts: every case (invariance variants such as :chunks included) that ran
    # ok with both values; advise counts its history's cases, invariance variants folded in
    return head + (
        f"{cases} of {compared} cases run ok on both sides change their stream, in {len(changed)} "
        f"probe{'s' if len(changed) > 1 else ''}"
    )


def confound_line(u: UpgradeView, step: Tuple[str, str]) -> str:
    """The other fields that differ between the two sides, with both values; '' when none."""
    fields = u.confound_values.get(step, {})
    if not fields:
        return ""
    both = "; ".join(f"{k} {', '.join(a)} -> {', '.join(b)}" for k, (a, b) in fields.items())
    return (
        f"the two sides also differ in {both}: "
        f"a change may come from these, not only from {u.field}"
    )


def kinds(p: ProbeChanges) -> str:
    out = []
    for kind, n in sorted(p.kinds.items(), key=lambda kv: -kv[1]):
        words = kind
        if kind == Difference.NUMERICAL_DRIFT.value and p.max_ulp:
            words += drift_bound(p.max_ulp, p.rtol, p.atol)
        out.append(words if len(p.kinds) == 1 else f"{words} ×{n}")
    return ", ".join(out)


def which(p: ProbeChanges) -> str:
    if p.changed == p.compared:
        return ""  # "4 of 4" says it
    return ("where " + p.params.text) if p.params else "no parameter explains which"


def meaning_lines(u: UpgradeView, markdown: bool = False) -> List[str]:
    """What each kind that occurs means for someone who relies on these streams."""
    cases: Counter = Counter()
    probes: Counter = Counter()
    for p in u.by_probe:
        for kind, n in p.kinds.items():
            cases[kind] += n
            probes[kind] += 1
    lead = "- " if markdown else "  "
    return [
        f"{lead}{kind} ({plural(probes[kind], 'probe')}, {plural(n, 'case')}): "
        f"{MEANING.get(kind, 'the streams differ')}"
        for kind, n in cases.most_common()
    ]


def answer(u: UpgradeView) -> str:
    """The whole answer in one line (the last line of the text report)."""
    return "; ".join(step_headline(u, step) for step in u.steps)


def upgrade_lines(u: UpgradeView, markdown: bool = False) -> List[str]:
    if markdown:
        return _markdown(u)
    out: List[str] = []
    for step in u.steps:
        probes = [p for p in u.by_probe if (p.before, p.after) == step]
        changed = [p for p in probes if p.changed]
        out.append(step_headline(u, step))
        confound = confound_line(u, step)
        if confound:
            out.append(f"  CAUTION: {confound}")
        out.append("")
        width = min(NAME_WIDTH, max((len(p.probe) for p in changed), default=0))
        for p in changed:
            parts = [x for x in (kinds(p), which(p)) if x]
            out.append(
                f"  {p.probe:<{width}}  {p.changed:>4} of {p.compared:<4}  " + "  ·  ".join(parts)
            )
        unchanged = [p for p in probes if not p.changed]
        out.append(
            f"  {plural(len(unchanged), 'probe')}, "
            f"{plural(sum(p.compared for p in unchanged), 'case')}: unchanged"
        )
        out.append("")
    if not u.by_probe:
        out += ["  no case was run under two consecutive values", ""]
    meaning = meaning_lines(u)
    if meaning:
        out += ["What the changes mean:"] + meaning
    if u.nondeterministic:
        out.append(
            f"  {len(u.nondeterministic)} nondeterministic case(s) left out "
            "(they differ run to run)"
        )
    return out


def _markdown(u: UpgradeView) -> List[str]:
    out: List[str] = []
    for step in u.steps:
        probes = [p for p in u.by_probe if (p.before, p.after) == step]
        changed = [p for p in probes if p.changed]
        out += [f"### {step_headline(u, step)}", ""]
        confound = confound_line(u, step)
        if confound:
            out += [f"> **Caution:** {confound}", ""]
        if changed:
            out += [
                "| probe | changed | compared | kinds | which cases |",
                "|---|---:|---:|---|---|",
            ]
            out += [
                f"| `{p.probe}` | {p.changed} | {p.compared} | {kinds(p)} | {which(p)} |"
                for p in changed
            ]
        unchanged = [p for p in probes if not p.changed]
        out += [
            "",
            f"{plural(len(unchanged), 'probe')}, "
            f"{plural(sum(p.compared for p in unchanged), 'case')}: unchanged.",
            "",
        ]
    meaning = meaning_lines(u, markdown=True)
    if meaning:
        out += ["What the changes mean:", ""] + meaning
    if u.nondeterministic:
        out.append(
            f"- {len(u.nondeterministic)} nondeterministic case(s) left out "
            "(they differ run to run)"
        )
    return out
