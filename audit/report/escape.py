"""Strings from run files, shown safely: control characters become visible escapes.

Probe keys, parameters, environment values and error messages come from run files that
anyone can write.  Printed raw, an ESC starts a terminal escape sequence (colours, cursor
moves, OSC 8 links, title changes), a CR overwrites the line, a newline forges a line of
the report, and bidirectional overrides reorder what a reader sees.  Every text and
markdown line goes through :func:`printable` (one helper, used by every renderer); the
HTML page uses it too, before :func:`html.escape`.
"""

from __future__ import annotations

import re

# C0 controls, DEL, C1 controls; line and paragraph separators; bidi embeddings, overrides,
# isolates and marks; the byte-order mark / zero-width no-break space.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\u200e\u200f\ufeff]")


def _escaped(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: object) -> str:
    """``text`` with every control or reordering character written as ``\\x1b`` / ``\\u202e``."""
    return _UNSAFE.sub(_escaped, str(text))


def lines(out: list[str]) -> str:
    """Report lines joined by newlines, each made printable (a newline inside a line is escaped)."""
    return "\n".join(printable(line) for line in out) + "\n"
