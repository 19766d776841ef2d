"""Case parameters that explain which cases changed: ``dtype in {float16, bfloat16}``,
``size >= 16``, ``p is a float``.

:func:`explain_params` gives an explanation only when it is exact on the data: every changed
case satisfies it and no unchanged case does (what ``compare`` and its upgrade view report).
:func:`distinguishing_values` is the looser question the release history asks: which values
of each parameter the changed cases take, where those are not all the values the probe has.
Pure: parameters in, named records out.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple


@dataclass(frozen=True)
class Condition:
    """One exact test on a case parameter: ``op`` is ``in``, ``not in``, ``>=``, ``<=`` or
    ``is``."""

    name: str
    op: str
    values: Tuple[Any, ...]  # in / not in: values; >= / <=: (threshold,); is: type names

    def holds(self, case: Mapping[str, Any]) -> bool:
        value = case[self.name]
        if self.op == "in":
            return _key(value) in {_key(v) for v in self.values}
        if self.op == "not in":
            return _key(value) not in {_key(v) for v in self.values}
        if self.op == "is":
            return _type(value) in self.values
        if not _number(value):
            return False
        return value >= self.values[0] if self.op == ">=" else value <= self.values[0]

    @property
    def text(self) -> str:
        if self.op == "is":
            return f"{self.name} is " + " or ".join(self.values)
        if self.op in (">=", "<="):
            return f"{self.name} {self.op} {value_text(self.values[0])}"
        if len(self.values) == 1:
            return f"{self.name} {'=' if self.op == 'in' else '!='} {value_text(self.values[0])}"
        return f"{self.name} {self.op} {{{', '.join(value_text(v) for v in self.values)}}}"


@dataclass(frozen=True)
class ParamSplit:
    """Parameters that separate the changed cases exactly: a case changed iff every condition holds.

    ``values`` is the JSON form: parameter -> the values the changed cases take.
    """

    conditions: Tuple[Condition, ...]
    values: Dict[str, List[Any]]

    def holds(self, case: Mapping[str, Any]) -> bool:
        return all(c.holds(case) for c in self.conditions)

    @property
    def text(self) -> str:
        return " and ".join(c.text for c in self.conditions)


def _key(value: Any) -> str:
    """A hashable spelling that keeps 1, 1.0 and true apart (Python's == does not)."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), allow_nan=True, default=str) + (
        "#float" if isinstance(value, float) else ""
    )


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


_TYPE_NAMES = (
    (bool, "a boolean"),
    (int, "an integer"),
    (float, "a float"),
    (str, "a string"),
    (list, "a list"),
    (dict, "an object"),
)


def _type(value: Any) -> str:
    if value is None:
        return "null"
    for kind, name in _TYPE_NAMES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def value_text(value: Any) -> str:
    """A parameter value as a report shows it: strings bare, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), allow_nan=True, default=str)


def _order(values: Iterable[Any]) -> List[Any]:
    """Distinct values (by :func:`_key`), numbers in numeric order, then the rest by spelling."""
    unique = {_key(v): v for v in values}
    return sorted(unique.values(), key=lambda v: (0, v, "") if _number(v) else (1, 0, _key(v)))


def explain_params(
    cases: Sequence[Mapping[str, Any]], changed: Sequence[bool]
) -> Optional[ParamSplit]:
    """The simplest exact explanation of ``changed`` by the cases' parameters, or None.

    One parameter is tried first (its changed values must never occur in an unchanged
    case), then a pair (a case changed iff both parameters take one of the changed cases'
    values).  Only parameters every case has are used.  None when all or none changed.
    """
    if not cases or all(changed) or not any(changed):
        return None
    names = [n for n in cases[0] if all(n in c for c in cases)]
    sides = {n: _sides(cases, changed, n) for n in names}
    single = [n for n in names if not sides[n][0].keys() & sides[n][1].keys()]
    if single:
        best = min(single, key=lambda n: (len(sides[n][0]), n == "seed", names.index(n)))
        return _split([best], sides)
    pairs = [
        (a, b)
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if _pair_separates(cases, changed, a, b, sides)
    ]
    if pairs:
        best_pair = min(
            pairs, key=lambda p: (len(sides[p[0]][0]) + len(sides[p[1]][0]), "seed" in p)
        )
        return _split(list(best_pair), sides)
    return None


Sides = Tuple[Dict[str, Any], Dict[str, Any]]  # (changed, unchanged): key -> value


def _sides(cases: Sequence[Mapping[str, Any]], changed: Sequence[bool], name: str) -> Sides:
    out: Sides = ({}, {})
    for case, hit in zip(cases, changed):
        out[0 if hit else 1][_key(case[name])] = case[name]
    return out


def _pair_separates(
    cases: Sequence[Mapping[str, Any]],
    changed: Sequence[bool],
    a: str,
    b: str,
    sides: Dict[str, Sides],
) -> bool:
    """Whether no unchanged case has both an ``a`` and a ``b`` value of the changed cases."""
    return not any(
        not hit and _key(c[a]) in sides[a][0] and _key(c[b]) in sides[b][0]
        for c, hit in zip(cases, changed)
    )


def _split(names: List[str], sides: Dict[str, Sides]) -> ParamSplit:
    conditions = []
    for n in names:
        hit, miss = sides[n]
        rest = {k: v for k, v in miss.items() if k not in hit}  # values no changed case has
        conditions.append(_condition(n, hit, rest))
    return ParamSplit(tuple(conditions), {n: _order(sides[n][0].values()) for n in names})


def _condition(name: str, hit: Dict[str, Any], rest: Dict[str, Any]) -> Condition:
    """The shortest way to say "one of the values in ``hit``", exact on the data.

    Every value the parameter takes is in ``hit`` or in ``rest`` (never both), so a
    threshold between them, a type only ``hit`` has, or "not one of ``rest``" holds for
    exactly the values in ``hit``: the same cases as the value set itself.
    """
    shown = _order(hit.values())
    if len(shown) > 1 and all(_number(v) for v in [*hit.values(), *rest.values()]):
        low, high = min(hit.values()), max(hit.values())
        if all(v < low for v in rest.values()):
            return Condition(name, ">=", (low,))
        if all(v > high for v in rest.values()):
            return Condition(name, "<=", (high,))
    types = {_type(v) for v in hit.values()}
    if len(shown) > 1 and not types & {_type(v) for v in rest.values()}:
        return Condition(name, "is", tuple(sorted(types)))
    if len(rest) < len(hit):
        return Condition(name, "not in", tuple(_order(rest.values())))
    return Condition(name, "in", tuple(shown))


def distinguishing_values(
    changed: Sequence[Mapping[str, Any]], every: Sequence[Mapping[str, Any]]
) -> Dict[str, List[str]]:
    """Parameter -> values among the changed cases, for parameters that tell them apart.

    A parameter whose changed values are all the values the probe has says nothing (every
    seed changed); one that holds only some of them does (only dtype=bfloat16 changed).
    """
    out: Dict[str, List[str]] = {}
    names = sorted({k for case in changed for k in case})
    for name in names:
        got = {_shown(case.get(name)) for case in changed}
        seen = {_shown(case.get(name)) for case in every}
        if got != seen:
            out[name] = sorted(got, key=_natural)
    return out


def _shown(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def _natural(text: str) -> Tuple[Any, ...]:
    try:
        return (0, float(text), text)
    except ValueError:
        return (1, 0.0, text)
