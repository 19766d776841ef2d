"""``compare --html FILE``: one self-contained page, a probe × environment matrix and details.

Each row of the matrix is a case that is not identical; each column an environment (its
header lists the fields that vary between the columns); each cell is coloured and
lettered by the stream (fingerprint) that environment produced for the case: ``A`` is the
most common stream of the row, ``B`` the next...  No scripts, no external assets; every
string shown goes through :func:`html.escape`.
"""

from __future__ import annotations

import html
from typing import Any, Dict, List, Sequence

from audit.compare.attribution import natural_key, shown
from audit.compare.model import Comparison, Finding
from audit.report.text import counts_line, listed

PALETTE = ["#4e79a7", "#f28e2b", "#59a14f", "#b07aa1", "#edc948", "#76b7b2", "#ff9da7", "#9c755f"]
MAX_ROWS = 300
MAX_COLUMNS = 60

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222}
h1{font-size:20px;margin:0 0 4px} h2{font-size:16px;margin:28px 0 8px}
.summary{color:#444;margin-bottom:12px} .bad{color:#b00020;font-weight:600} .good{color:#1b7f3a;font-weight:600}
table.m{border-collapse:collapse;font-size:12px} table.m td,table.m th{border:1px solid #ddd;padding:2px 6px}
table.m th.f{text-align:right;background:#f6f6f6;font-weight:600;white-space:nowrap}
table.m th.v{background:#fafafa;font-weight:400;white-space:nowrap;max-width:84px;overflow:hidden}
td.c{width:26px;text-align:center;color:#fff;font-weight:700}
td.none{background:repeating-linear-gradient(45deg,#eee,#eee 3px,#fff 3px,#fff 6px)}
td.multi{background:#222;color:#fff}
td.k{max-width:460px;overflow-wrap:anywhere;font-family:ui-monospace,monospace;font-size:12px}
.tag{display:inline-block;padding:0 6px;border-radius:3px;color:#fff;font-size:11px;font-weight:600}
.divergent{background:#c0392b}.nondeterministic{background:#8e44ad}.error{background:#7f8c8d}
.incomparable{background:#95a5a6}.identical{background:#27ae60}
.finding{border-left:4px solid #ccc;padding:4px 12px;margin:10px 0}
.finding code{font-size:12px} ul{margin:4px 0}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _columns(findings: Sequence[Finding]) -> List[int]:
    envs = sorted({e for f in findings for s in f.streams for e in s.env_ids})
    return envs[:MAX_COLUMNS]


def _header(columns: List[int], envs: List[Dict[str, Any]]) -> List[str]:
    """One header row per field that varies between the columns."""
    fields = [k for k in (envs[columns[0]] if columns else {}) if len({shown(envs[c].get(k)) for c in columns}) > 1]
    columns.sort(key=lambda c: tuple(natural_key(shown(envs[c].get(k))) for k in fields))
    rows = []
    for k in fields or ["environment"]:
        values = [shown(envs[c].get(k)) if fields else str(c) for c in columns]
        cells = "".join(f'<th class="v" title="{_e(v)}">{_e(_clip(v))}</th>' for v in values)
        rows.append(f'<tr><th class="f" colspan="2">{_e(k)}</th>{cells}</tr>')
    return rows


def _clip(value: str, width: int = 11) -> str:
    """Header values stay narrow (a SIMD feature list would push every column off screen);
    the full value is in the cell's title."""
    return value if len(value) <= width else value[: width - 1] + "\u2026"


def _letters(f: Finding, columns: List[int]) -> List[int]:
    """Stream order for one row: most runs first, ties to the stream of the leftmost column,
    so a split that follows the columns reads as a clean block of A and a block of B."""
    place = {e: i for i, e in enumerate(columns)}
    order = sorted(range(len(f.streams)), key=lambda i: (-f.streams[i].run_count,
                                                         min((place.get(e, 10**9) for e in f.streams[i].env_ids),
                                                             default=10**9)))
    rank = [0] * len(order)
    for letter, i in enumerate(order):
        rank[i] = letter
    return rank


def _cell(f: Finding, env: int, rank: List[int]) -> str:
    hits = sorted(rank[i] for i, s in enumerate(f.streams) if env in s.env_ids)
    if not hits:
        return '<td class="c none" title="not run or not supported"></td>'
    letters = "/".join(chr(65 + i) if i < 26 else "+" for i in hits)
    if len(hits) > 1:
        return f'<td class="c multi" title="{_e("several streams in one environment: " + letters)}">{_e(letters)}</td>'
    colour = PALETTE[hits[0] % len(PALETTE)]
    title = f"stream {letters}: {f.streams[rank.index(hits[0])].fingerprint}"
    return f'<td class="c" style="background:{colour}" title="{_e(title)}">{_e(letters)}</td>'


def _matrix(c: Comparison, findings: Sequence[Finding], columns: List[int]) -> List[str]:
    if not findings or not columns:
        return ["<p>No case differs between the runs: nothing to draw.</p>"]
    out = ['<table class="m">', *_header(columns, c.envs)]  # sorts the columns in place
    for f in findings:
        tag = f.match.value if f.match else f.verdict.value
        out.append(f'<tr><td><span class="tag {_e(f.verdict.value)}">{_e(tag)}</span></td>'
                   f'<td class="k">{_e(f.probe_key)} {_e(f.params)}</td>'
                   + "".join(_cell(f, e, _letters(f, columns)) for e in columns) + "</tr>")
    out.append("</table>")
    return out


def _details(f: Finding, columns: List[int]) -> List[str]:
    tag = f.match.value if f.match else f.verdict.value
    out = [f'<div class="finding"><span class="tag {_e(f.verdict.value)}">{_e(tag)}</span> '
           f"<b>{_e(f.probe_key)}</b> <code>{_e(f.params)}</code> on {_e(f.device)}", "<ul>"]
    if f.explanation:
        out.append(f"<li>{_e(f.explanation)}</li>")
    if f.difference:
        ulps = ("" if f.max_ulp is None
                else f": max {f.max_ulp:g} ULP, {f.fraction_differing:.0%} of sampled elements differ")
        out.append(f"<li>difference: <b>{_e(f.difference.value)}</b>{_e(ulps)}</li>")
    if f.axes[1:]:
        out.append(f"<li>also explained by: {_e(', '.join(f.axes[1:]))}</li>")
    rank = _letters(f, columns)
    for i, s in sorted(((rank[j], s) for j, s in enumerate(f.streams)), key=lambda pair: pair[0])[:8]:
        where = ", ".join(f"{k}={'/'.join(v)}" for k, v in s.environment.items())
        colour = PALETTE[i % len(PALETTE)]
        out.append(f'<li><span class="tag" style="background:{colour}">{chr(65 + i) if i < 26 else "+"}</span> '
                   f"<code>{_e(s.fingerprint)}</code> {s.run_count} run(s) {_e(where)}</li>")
    out += [f"<li>error: {_e(m)}</li>" for m in f.messages] + [f"<li>note: {_e(n)}</li>" for n in f.notes]
    if f.expected:
        out.append(f"<li>expected: {_e(f.expected)}</li>")
    return out + ["</ul></div>"]


def render(c: Comparison) -> str:
    findings = listed(c)[:MAX_ROWS]
    unexpected = len(c.unexpected)
    status = (f'<span class="bad">{unexpected} unexpected finding(s)</span>' if unexpected
              else '<span class="good">nothing unexpected</span>')
    body = [f"<h1>determinism-audit: compare</h1><div class='summary'>{status} · {c.rows} rows from {c.runs} runs"
            f" · cases: {_e(counts_line(c))}</div>"]
    if c.baseline:
        body.append(f"<div class='summary'>baseline: {_e(c.baseline)}</div>")
    columns = _columns(findings)
    body += ["<h2>Cases × environments (letters: streams, A = most common)</h2>", *_matrix(c, findings, columns)]
    body += ["<h2>Findings</h2>"] + [line for f in findings for line in _details(f, columns)]
    if c.skipped:
        body += ["<h2>Skipped files</h2><ul>"]
        body += [f"<li><code>{_e(s.path)}</code>: {_e(s.reason)}</li>" for s in c.skipped] + ["</ul>"]
    if c.notes:
        body += ["<h2>Notes</h2><ul>"] + [f"<li>{_e(n)}</li>" for n in c.notes] + ["</ul>"]
    if c.expectation_notes:
        body += ["<h2>Expectations</h2><ul>"] + [f"<li>{_e(n)}</li>" for n in c.expectation_notes] + ["</ul>"]
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>determinism-audit compare</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n")
