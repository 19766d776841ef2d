"""``compare --html FILE``: one self-contained page a person reads at a glance.

The answer in one line; then a probe × environment heatmap (rows: the probes that differ,
grouped by family, with one line for each family's unchanged probes; columns: the
environments, headed by the fields that vary, with every field on hover; a cell's colour is
the most severe kind among the probe's cases affected there, its number how many); then
every probe that differs as a ``<details>`` drill-down to its cases.  In baseline mode this
machine's environments stand beside the reference's.  No scripts, no external assets;
every string shown goes through :func:`printable` and :func:`html.escape`.
"""

from __future__ import annotations

import html
from typing import Any, Dict, List, Sequence, Tuple

from audit.compare.attribution import shown
from audit.compare.judgements import QUIET, differs, plain, shown_verdict
from audit.compare.model import Finding
from audit.report import phrases
from audit.report.escape import printable
from audit.report.heatmap import KINDS, Cell, Column, Family, Heatmap, build, category
from audit.report.phrases import QUIET_MEANING
from audit.report.text import counts_line, headline, match_counts, status_words
from audit.report.view import View, both_values, varies_with

#: kind, background, text colour and legend label of every cell kind (one per line).
_COLOUR_TABLE = """
error             #4d4d4d #fff error
no-longer-runs    #252525 #fff no longer runs here
nondeterministic  #7b3fa0 #fff nondeterministic
structural        #67000d #fff structural (dtype or shape)
stream-change     #d7301f #fff stream change
new               #a50f15 #fff new stream (kind not measured)
differs           #8c6d62 #fff differs (kind not measured)
variant           #c51b7d #fff variant (invariance broken)
sparse            #f16913 #fff sparse (a few blocks)
within-sample     #fd8d3c #222 within N ULP where sampled, other blocks differ
signed-zero       #fee391 #222 sign of zero only
outside-sample    #fdae6b #222 differs outside the sample
numerical-drift   #fdd049 #222 numerical drift (ULPs)
new-case          #6baed6 #222 new case
incomparable      #bdbdbd #222 incomparable
"""
COLOURS: Dict[str, Tuple[str, str, str]] = {
    kind: (background, text, label)
    for kind, background, text, label in (
        line.split(maxsplit=3) for line in _COLOUR_TABLE.strip().splitlines()
    )
}
IDENTICAL = "#e3f2dd"
MAX_CASES = 5  # cases drawn per probe in the drill-down (the rest: --json)
MAX_STREAMS = 8
WRAP = 28  # header values longer than this get a legend letter instead

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:16px 18px;color:#222}
h1{font-size:19px;margin:0 0 6px} h2{font-size:16px;margin:26px 0 8px}
.answer{font-size:16px;font-weight:600;margin:4px 0} .bad{color:#b00020} .good{color:#1b7f3a}
.meta{color:#555;margin:2px 0 10px}
.legend span{display:inline-block;margin:0 10px 4px 0;font-size:12px}
.legend i{display:inline-block;width:12px;height:12px;border-radius:2px;\
vertical-align:-2px;margin-right:4px}
table.h{border-collapse:collapse;font-size:12px;width:100%}
table.h th,table.h td{border:1px solid #fff;padding:2px 5px}
th.f{text-align:right;color:#555;font-weight:600;white-space:nowrap}
th.v{background:#f2f2f2;font-weight:400;font-size:11.5px;width:62px;max-width:96px;\
vertical-align:bottom}
th.side{background:#dde6f0;font-weight:600}
tr.fam th{text-align:left;background:#fafafa;border-top:2px solid #ccc;padding-top:6px;\
font-size:13px}
tr.fam span{font-weight:400;color:#666}
th.p{text-align:left;font-weight:400;font-family:ui-monospace,monospace;font-size:11.5px;\
white-space:nowrap;padding-right:8px;width:1%}
th.p a{color:#1f4e8c;text-decoration:none}
td.n{text-align:right;color:#444;white-space:nowrap}
td.c{min-width:30px;text-align:center;font-weight:700}
td.ok{background:#e3f2dd}
td.none{background:repeating-linear-gradient(45deg,#eee,#eee 3px,#fff 3px,#fff 6px)}
td.w{color:#333;min-width:230px;width:34%;font-size:11px}
tr.same th.p{color:#2d6a2d;font-family:inherit;font-style:italic}
.keys{font-size:12px;color:#444;margin:6px 0}
details{border-left:4px solid #ccc;margin:6px 0;padding:2px 10px}
details[open]{border-left-color:#888} summary{cursor:pointer}
.case{margin:6px 0 6px 8px;font-size:13px}
.tag{display:inline-block;padding:0 6px;border-radius:3px;font-size:11px;font-weight:600}
code{font-size:12px;overflow-wrap:anywhere} ul{margin:2px 0 2px 18px;padding:0}
"""


def _e(value: Any) -> str:
    return html.escape(printable(value), quote=True)


def _title(text: str) -> str:
    """A tooltip: each line escaped, the lines joined by a real line break (not a literal \\x0a)."""
    return "&#10;".join(_e(line) for line in text.split("\n"))


def _tag(kind: str, text: str = "") -> str:
    """A coloured label; the colours are classes of the page's style (one rule per kind)."""
    name = kind if kind in COLOURS else "identical"
    return f'<span class="tag k-{name}">{_e(text or kind)}</span>'


# --------------------------------------------------------------------------- heatmap


def _labels(m: Heatmap) -> Tuple[Dict[Tuple[str, str], str], List[str]]:
    """Short labels for header values too long to wrap, and the legend lines that expand them."""
    labels: Dict[Tuple[str, str], str] = {}
    legend = []
    for f in m.fields:
        long = sorted(
            {shown(col.env.get(f)) for col in m.columns if len(shown(col.env.get(f))) > WRAP}
        )
        for i, value in enumerate(long):
            labels[(f, value)] = f"[{chr(65 + i) if i < 26 else i}]"
            legend.append(f"<b>{_e(labels[(f, value)])}</b> {_e(f)} = {_e(value)}")
    return labels, legend


def _column_title(col: Column, fields: Sequence[str], more: Sequence[str]) -> str:
    side = f"{col.side}\n" if col.side else ""
    return side + "\n".join(f"{f} = {shown(col.env.get(f))}" for f in [*fields, *more])


def _header(m: Heatmap, labels: Dict[Tuple[str, str], str]) -> List[str]:
    out = []
    if any(col.side for col in m.columns):
        sides: List[Tuple[str, int]] = []
        for col in m.columns:
            if sides and sides[-1][0] == col.side:
                sides[-1] = (col.side, sides[-1][1] + 1)
            else:
                sides.append((col.side, 1))
        cells = "".join(f'<th class="side" colspan="{n}">{_e(side)}</th>' for side, n in sides)
        out.append(f'<tr><th colspan="2"></th>{cells}<th></th></tr>')
    for i, f in enumerate(m.fields):
        cells = "".join(
            f'<th class="v" title="{_header_title(col, m, f, i)}">'
            f"{_e(labels.get((f, shown(col.env.get(f))), shown(col.env.get(f))))}</th>"
            for col in m.columns
        )
        last = (
            '<th class="f" style="text-align:left">how · which cases · why</th>'
            if i == len(m.fields) - 1
            else "<th></th>"
        )
        out.append(f'<tr><th class="f" colspan="2">{_e(f)}</th>{cells}{last}</tr>')
    return out


def _header_title(col: Column, m: Heatmap, f: str, row: int) -> str:
    """The first header row's tooltip lists the column's fields, one per line; the others its
    value."""
    return _title(_column_title(col, m.fields, m.more)) if row == 0 else _e(shown(col.env.get(f)))


def _blank(ran: bool, col: Column) -> str:
    if ran:
        return '<td class="c ok"></td>'  # the legend says what green means
    if col.side == "reference":  # the core did not say what the reference ran
        return '<td class="c"></td>'
    return '<td class="c none" title="not run or unsupported here"></td>'


def _cell(cell: Cell, col: Column) -> str:
    kind = cell.kind
    if kind is None:
        return _blank(cell.ran, col)
    detail = ", ".join(
        f"{n} {k}" for k, n in sorted(cell.kinds.items(), key=lambda kv: KINDS.index(kv[0]))
    )
    cases = f"{cell.count} case{'s' if cell.count > 1 else ''}"
    title = (
        f"{cases} affected here: {detail}"
        if col.side != "reference"
        else f"{cases} whose new stream on this machine differs from the stream this reference "
        f"run made: {detail}"
    )
    return f'<td class="c k-{kind}" title="{_e(title)}">{cell.count}</td>'


def _family_rows(fam: Family, m: Heatmap, anchors: Dict[int, str]) -> List[str]:
    width = len(m.columns)
    differ = len(fam.rows)
    total = differ + len(fam.quiet) + len(fam.unchanged) + len(fam.unsupported)
    out = [
        f'<tr class="fam"><th colspan="{width + 3}">{_e(fam.name)} '
        f"<span>— {differ} of {total} probe{'s' if total > 1 else ''} differ</span></th></tr>"
    ]
    for row in fam.rows:
        p = row.probe
        words = " · ".join(x for x in (phrases.kinds(p), phrases.which(p), p.why) if x)
        cells = "".join(_cell(c, col) for c, col in zip(row.cells, m.columns))
        out.append(
            f'<tr><th class="p"><a href="#{anchors[id(p)]}">{_e(phrases.probe_name(p))}</a></th>'
            f'<td class="n">{p.changed}/{p.cases}</td>{cells}<td class="w">{_e(words)}</td></tr>'
        )
    if fam.quiet:
        names = ", ".join(p.probe for p in fam.quiet)
        counts = {v: sum(p.verdicts.get(v, 0) for p in fam.quiet) for v in QUIET}
        words = "; ".join(f"{n} cases {QUIET_MEANING[v]}" for v, n in counts.items() if n)
        cells = "".join(_cell(c, col) for c, col in zip(fam.quiet_cells, m.columns))
        label = f"{len(fam.quiet)} probe{'s' if len(fam.quiet) > 1 else ''} new or changed"
        out.append(
            f'<tr class="same"><th class="p" title="{_e(names)}">{_e(label)}</th>'
            f'<td class="n">{sum(p.quiet for p in fam.quiet)}</td>{cells}'
            f'<td class="w">{_e(words)}</td></tr>'
        )
    if fam.unchanged:
        names = ", ".join(p.probe for p in fam.unchanged)
        cases = sum(p.cases for p in fam.unchanged)
        cells = "".join(_blank(ran, col) for ran, col in zip(fam.ran, m.columns))
        label = f"{len(fam.unchanged)} probe{'s' if len(fam.unchanged) > 1 else ''} unchanged"
        same = (
            "reproduce the baseline"
            if any(col.side for col in m.columns)
            else "identical in every environment"
        )
        out.append(
            f'<tr class="same"><th class="p" title="{_e(names)}">{_e(label)}</th>'
            f'<td class="n">{cases}</td>{cells}<td class="w">{same}</td></tr>'
        )
    if fam.unsupported:
        names = ", ".join(p.probe for p in fam.unsupported)
        label = f"{len(fam.unsupported)} probe{'s' if len(fam.unsupported) > 1 else ''} unsupported"
        out.append(
            f'<tr class="same"><th class="p" title="{_e(names)}">{label}'
            f'</th><td class="n">{sum(p.cases for p in fam.unsupported)}</td>'
            f'<td class="c none" colspan="{width}"></td>'
            '<td class="w">unsupported in every run</td></tr>'
        )
    return out


def _legend(m: Heatmap) -> str:
    present = {k for fam in m.families for row in fam.rows for c in row.cells for k in c.kinds}
    items = [
        f'<span><i style="background:{COLOURS[k][0]}"></i>{_e(COLOURS[k][2])}</span>'
        for k in KINDS
        if k in present
    ]
    items += [
        f'<span><i style="background:{IDENTICAL}"></i>identical</span>',
        '<span><i class="none" style="background:'
        'repeating-linear-gradient(45deg,#ddd,#ddd 2px,#fff 2px,#fff 4px)"></i>not run</span>',
    ]
    number = " <span>· the number: cases affected</span>"
    return '<div class="legend">' + "".join(items) + number + "</div>"


def heatmap(m: Heatmap, anchors: Dict[int, str]) -> List[str]:
    if not m.columns:
        return ["<p>No run produced a result to draw.</p>"]
    labels, legend = _labels(m)
    out = [_legend(m), '<table class="h">', "<thead>", *_header(m, labels), "</thead><tbody>"]
    for fam in m.families:
        out += _family_rows(fam, m, anchors)
    out.append("</tbody></table>")
    if legend or m.more:
        out.append(
            '<div class="keys">'
            + " · ".join(legend)
            + (
                f"{' · ' if legend else ''}also varying (hover a column): {_e(', '.join(m.more))}"
                if m.more
                else ""
            )
            + "</div>"
        )
    return out


# --------------------------------------------------------------------------- drill-down


#: One rule per tag colour (the drill-down has hundreds of tags: classes keep the page small).
_TAG_STYLE = (
    "".join(f".k-{kind}{{background:{bg};color:{fg}}}" for kind, (bg, fg, _) in COLOURS.items())
    + f".k-identical{{background:{IDENTICAL};color:#222}}"
)


def _case(f: Finding, shared: str = "") -> List[str]:
    kind = category(f) if not plain(f) else "identical"
    head = " · ".join(x for x in (phrases.how(f), phrases.where(f.measured)) if x)
    out = [
        f'<div class="case">{_tag(kind, shown_verdict(f))} '
        f"<code>{_e(f.params or '(no parameters)')}</code> {_e(head)}<ul>"
    ]
    why = [f.explanation, varies_with(f), both_values(f.axes_values)]
    if f.first_divergence:
        why.append(phrases.divergence(f.first_divergence))
    # the probe's line says it once
    out += [f"<li>{_e(x)}</li>" for x in why if x and x not in shared]
    for s in f.streams[:MAX_STREAMS] if len(f.streams) > 1 or f.match is not None else []:
        where = _clipped(phrases.stream_where(f, s))
        known = (
            ""
            if s.known is None
            else (f" · known: {s.reference or ''}" if s.known else " · <b>new</b>")
        )
        near = f"<br>{_e(phrases.nearest(s))}" if s.nearest else ""
        out.append(
            f"<li><code>{_e(s.fingerprint[:16])}</code> {s.run_count} run(s) "
            f"{_e(where)}{known}{near}</li>"
        )
    if len(f.streams) > MAX_STREAMS:
        out.append(f"<li>… {len(f.streams) - MAX_STREAMS} more streams (see --json)</li>")
    out += [f"<li>error: {_e(m)}</li>" for m in f.messages] + [
        f"<li>note: {_e(n)}</li>" for n in f.notes
    ]
    if f.expected:
        out.append(f"<li>expected: {_e(f.expected)}</li>")
    return out + ["</ul></div>"]


def _clipped(text: str, width: int = 160) -> str:
    """A stream's environment, cut to one line (every field is in --json)."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"


def drill_down(s: View, anchors: Dict[int, str]) -> List[str]:
    out = []
    for p in s.changed:
        words = " · ".join(
            x
            for x in (
                phrases.counts(p),
                phrases.kinds(p),
                phrases.which(p),
                p.why,
                phrases.expected(p),
            )
            if x
        )
        cases = [f for f in p.findings if differs(f)] + [
            f for f in p.findings if not plain(f) and not differs(f)
        ]
        out.append(
            f'<details id="{anchors[id(p)]}"><summary><b>{_e(phrases.probe_name(p))}</b> '
            f"{_e(words)}</summary>"
        )
        for f in cases[:MAX_CASES]:
            out += _case(f, words)
        if len(cases) > MAX_CASES:
            out.append(f"<p>… and {len(cases) - MAX_CASES} more cases (see --json)</p>")
        out.append("</details>")
    return out


# --------------------------------------------------------------------------- page


def render(v: View, details: bool = True) -> str:
    """The page (``details`` is accepted for a uniform call; the page always has the drill-down)."""
    c = v.comparison
    anchors = {id(p): f"p{i}" for i, p in enumerate(v.changed)}
    unexpected = len(c.unexpected)
    good = unexpected == 0 and c.compared > 0
    status = f'<span class="{"good" if good else "bad"}">{_e(status_words(c))}</span>'
    against = f" · against the baseline: {_e(match_counts(c))}" if c.baseline else ""
    body = [
        "<h1>determinism-audit: compare</h1>",
        f'<div class="answer">{_e(headline(v))} · {status}</div>',
        f'<div class="meta">{phrases.plural(c.runs, "run")} · {phrases.plural(c.rows, "row")} · '
        f"cases: {_e(counts_line(c))}{against}</div>",
    ]
    if c.baseline:
        body.append(f'<div class="meta">baseline: {_e(c.baseline)}</div>')
    body += [f'<div class="meta bad">{_e(note)}</div>' for note in v.environment_notes]
    if c.upgrade is not None:
        from audit.report.upgrade_text import upgrade_lines

        body.append("<pre>" + "\n".join(_e(line) for line in upgrade_lines(c.upgrade)) + "</pre>")
    body += ["<h2>Probes × environments</h2>", *heatmap(build(v), anchors)]
    if v.changed:
        body += ["<h2>Probes that differ</h2>", *drill_down(v, anchors)]
    body += _lists(v)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        "<title>determinism-audit compare</title>"
        f"<style>{_STYLE}{_TAG_STYLE}</style></head><body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )


def _lists(s: View) -> List[str]:
    c = s.comparison
    out = []
    if s.quiet:
        names = ", ".join(f"{p.probe} ({p.quiet})" for p in s.quiet)
        out.append(
            f"<details><summary>{len(s.quiet)} probes with new or incomparable cases only</summary>"
            f"<p>{_e(names)}</p></details>"
        )
    if s.unchanged:
        names = ", ".join(f"{p.probe} ({p.cases})" for p in s.unchanged)
        out.append(
            f"<details><summary>{len(s.unchanged)} probes, {s.unchanged_cases()} cases unchanged"
            f"</summary><p>{_e(names)}</p></details>"
        )
    if c.skipped:
        out += ["<h2>Skipped files</h2><ul>"]
        out += [f"<li><code>{_e(x.path)}</code>: {_e(x.reason)}</li>" for x in c.skipped] + [
            "</ul>"
        ]
    if c.notes:
        out += ["<h2>Notes</h2><ul>"] + [f"<li>{_e(n)}</li>" for n in c.notes] + ["</ul>"]
    if c.expectation_notes:
        out += (
            ["<h2>Expectations</h2><ul>"]
            + [f"<li>{_e(n)}</li>" for n in c.expectation_notes]
            + ["</ul>"]
        )
    return out
