"""Domains (plain records, :mod:`audit.domains`) to hypothesis strategies, and ``--param``.

``--param`` spellings (one per parameter, repeatable):

- ``size=1..32768``: whole numbers in that range (inclusive);
- ``shape=1..64,1..4096``: a list, one range per element;
- ``dtype=float32,float64``: one of the listed values (each read as JSON when it parses,
  else as a string);
- ``seed=3`` or ``shape=[8,1000]``: a fixed value (JSON when it parses), not searched.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, List, Mapping, Tuple

from audit import domains
from audit.domains import Compared, Domain, Integers, SampledFrom, Tuples
from audit.errors import RegistryError, UsageError

_RANGE = re.compile(r"^\s*(-?\d+)\s*\.\.\s*(-?\d+)\s*$")


def strategy(domain: Domain) -> Any:
    """The hypothesis strategy of one domain (a compared value: its candidate's)."""
    from hypothesis import strategies as st

    if isinstance(domain, Integers):
        return st.integers(domain.lo, domain.hi)
    if isinstance(domain, SampledFrom):
        return st.sampled_from(list(domain.values))
    if isinstance(domain, Tuples):
        return st.tuples(*(strategy(p) for p in domain.parts)).map(list)
    return strategy(domain.domain)


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def parse_param(text: str) -> Tuple[str, Any]:
    """``NAME=SPEC`` -> (name, a Domain to search, or a fixed value wrapped in :class:`Fixed`)."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not name or not spec.strip():
        raise UsageError(
            f"--param {text!r}: expected NAME=LO..HI, NAME=A,B or NAME=VALUE (e.g. size=1..100000)"
        )
    try:
        whole = json.loads(spec)
    except ValueError:
        whole = None
    else:
        return name, Fixed(whole)
    parts = [p.strip() for p in spec.split(",")]
    try:
        ranges = [_RANGE.match(p) for p in parts]
        if all(ranges):
            bounds = [domains.integers(int(m.group(1)), int(m.group(2))) for m in ranges if m]
            return name, bounds[0] if len(bounds) == 1 else domains.tuples(*bounds)
    except RegistryError as exc:
        raise UsageError(f"--param {text!r}: {exc}") from None
    if any(ranges):
        raise UsageError(
            f"--param {text!r}: mix of ranges and values; give LO..HI for every element or none"
        )
    values = [_value(p) for p in parts]
    return name, Fixed(values[0]) if len(values) == 1 else domains.sampled_from(values)


class Fixed:
    """A ``--param`` that fixes a value instead of searching it."""

    def __init__(self, value: Any) -> None:
        self.value = value

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Fixed) and other.value == self.value

    def __repr__(self) -> str:
        return f"Fixed({self.value!r})"


def merged(
    declared: Mapping[str, Domain],
    given: List[Tuple[str, Any]],
    grid: Mapping[str, Any],
    invariance: str = "",
) -> Tuple[Dict[str, Domain], Dict[str, Any]]:
    """The domains to search and the fixed values, from the probe's declaration and ``--param``.

    A ``--param`` range for the invariance parameter keeps the declared reference (it
    replaces only the candidate's domain).  A name outside the grid is a usage error.
    """
    search = dict(declared)
    fixed: Dict[str, Any] = {}
    for name, spec in given:
        if name not in grid:
            raise UsageError(
                f"--param {name}: the probe has no parameter {name!r} (it has {', '.join(grid)})"
            )
        if isinstance(spec, Fixed):
            search.pop(name, None)
            fixed[name] = spec.value
        elif name == invariance and isinstance(search.get(name), Compared):
            old = search[name]
            assert isinstance(old, Compared)
            search[name] = domains.compared_with(spec, old.reference, old.same_as)
        elif name == invariance:
            search[name] = domains.compared_with(spec)
        else:
            search[name] = spec
    return search, fixed
