"""Search domains: where ``explore`` may draw a probe's parameters from, as plain data.

A probe declares them beside its grid, ``@probe(..., search={"size": integers(1, 10**7)})``.
The worker side must not import hypothesis, so a domain is a small frozen record that the
host turns into a hypothesis strategy (:mod:`audit.explore.strategies`).  Every record
has a JSON spelling (:func:`to_json` / :func:`from_json`), so a worker running in another
interpreter can describe a user's probe to the host.

- ``integers(lo, hi)``: whole numbers in [lo, hi];
- ``sampled_from([...])``: one of the listed values;
- ``tuples(d1, d2, ...)``: a list with one value drawn from each domain (a shape ``[m, k, n]``);
- ``compared_with(domain, reference=VALUE | same_as=PARAM)``: for an invariance parameter,
  the value to compare with a reference: a fixed one, or another parameter's drawn value
  (``chunks`` against ``n`` drawn at once).  Without it the reference is the grid's.

Worker side: standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple, Union, overload

from audit.errors import RegistryError


@dataclass(frozen=True)
class Integers:
    lo: int
    hi: int


@dataclass(frozen=True)
class SampledFrom:
    values: Tuple[Any, ...]


@dataclass(frozen=True)
class Tuples:
    parts: Tuple[Domain, ...]


@dataclass(frozen=True)
class Compared:
    """An invariance parameter's candidate value, and what it is compared with."""

    domain: Domain
    reference: Any = None
    same_as: Optional[str] = None


Domain = Union[Integers, SampledFrom, Tuples, Compared]


@overload
def candidates(domain: Domain) -> Domain: ...
@overload
def candidates(domain: None) -> None: ...
def candidates(domain: Optional[Domain]) -> Optional[Domain]:
    """Where a parameter's values are drawn from: an invariance parameter's own domain."""
    return domain.domain if isinstance(domain, Compared) else domain


def integers(lo: int, hi: int) -> Integers:
    if not (isinstance(lo, int) and isinstance(hi, int)) or lo > hi:
        raise RegistryError(f"integers({lo!r}, {hi!r}): needs two integers, lo <= hi")
    return Integers(lo, hi)


def sampled_from(values: Sequence[Any]) -> SampledFrom:
    if not list(values):
        raise RegistryError("sampled_from([]): needs at least one value")
    return SampledFrom(tuple(values))


def tuples(*parts: Domain) -> Tuples:
    if not parts:
        raise RegistryError("tuples(): needs at least one domain")
    return Tuples(tuple(parts))


def compared_with(domain: Domain, reference: Any = None, same_as: Optional[str] = None) -> Compared:
    return Compared(domain, reference, same_as)


def to_json(domain: Domain) -> Dict[str, Any]:
    """The JSON spelling: ``{"integers": [lo, hi]}``, ``{"sampled_from": [...]}`` ..."""
    if isinstance(domain, Integers):
        return {"integers": [domain.lo, domain.hi]}
    if isinstance(domain, SampledFrom):
        return {"sampled_from": list(domain.values)}
    if isinstance(domain, Tuples):
        return {"tuples": [to_json(p) for p in domain.parts]}
    return {
        "compared_with": to_json(domain.domain),
        "reference": domain.reference,
        "same_as": domain.same_as,
    }


def from_json(data: Mapping[str, Any]) -> Domain:
    """The record back from its JSON spelling; anything else is a RegistryError."""
    try:
        if "integers" in data:
            return integers(*data["integers"])
        if "sampled_from" in data:
            return sampled_from(data["sampled_from"])
        if "tuples" in data:
            return tuples(*(from_json(p) for p in data["tuples"]))
        if "compared_with" in data:
            return compared_with(
                from_json(data["compared_with"]), data.get("reference"), data.get("same_as")
            )
    except (TypeError, ValueError):
        pass
    raise RegistryError(f"not a search domain: {data!r}")


def check(
    key: str, search: Mapping[str, Any], grid: Mapping[str, Any], invariance: Optional[str]
) -> None:
    """Each domain names a grid parameter and is a domain record; ``compared_with`` only for
    the invariance parameter, and its ``same_as`` another searched or grid parameter."""
    for name, domain in search.items():
        if name not in grid:
            raise RegistryError(f"probe {key!r}: search parameter {name!r} is not in its grid")
        if not isinstance(domain, (Integers, SampledFrom, Tuples, Compared)):
            raise RegistryError(
                f"probe {key!r}: search[{name!r}] is not a domain (integers, sampled_from, "
                f"tuples, compared_with from audit.probe_api)"
            )
        if isinstance(domain, Compared):
            if name != invariance:
                raise RegistryError(
                    f"probe {key!r}: compared_with is for the invariance parameter, not {name!r}"
                )
            if domain.same_as is not None and domain.same_as not in grid:
                raise RegistryError(
                    f"probe {key!r}: compared_with(same_as={domain.same_as!r}) is not in its grid"
                )
