"""The probe registry: probes register themselves by their public probe id.

A *probe* is a small function that exercises one public API with seeded input and
returns what that API produced.  A *case* is one point of the probe's parameter grid.

The registry follows nox's session registry: a decorator usable with or without
arguments, a private dict, copies on read, ``reset`` for tests, and an error on a
duplicate id.  This module is part of the worker side: standard library only.
"""

from __future__ import annotations

import copy
import fnmatch
import hashlib
import inspect
import itertools
import json
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from audit.errors import DuplicateProbe, RegistryError

#: The seed panel every seeded probe runs with unless the CLI says otherwise.
#: 2**32 - 1 is the largest seed numpy's legacy seeding accepts.
DEFAULT_SEEDS: Tuple[int, ...] = (0, 17, 20210530, 2**32 - 1)

#: Marker in a grid for "the seed panel of this run".
SEEDS = "__seeds__"

ProbeFunc = Callable[..., Any]

#: What a probe is: ``generator`` draws from a seeded generator, ``op`` computes on fixed
#: inputs, ``trace`` runs its body under a recorder of every op it executes.
KINDS = ("generator", "op", "trace")


@dataclass(frozen=True)
class Requirement:
    """What a probe needs: a library at a minimum version, a device, a Python."""

    library: Optional[str] = None  # "numpy", "torch", "pandas" or None
    min_version: Optional[str] = None
    device: str = "cpu"  # "cpu" or "cuda"
    min_python: Optional[Tuple[int, int]] = None


@dataclass(frozen=True)
class Probe:
    """A registered probe: its id, function, grid and requirements."""

    key: str  # registration key: the id, or the id with "@cuda", or an explicit name
    id: str
    func: ProbeFunc
    grid: Mapping[str, Sequence[Any]]
    requirement: Requirement
    version: str
    kind: str  # one of KINDS
    description: str = ""
    extra_cases: Tuple[Mapping[str, Any], ...] = field(default_factory=tuple)
    repeats: int = 2  # executions per case in one process; more for kernels that race
    invariance: Optional[str] = None  # a parameter whose values must not change the result

    @property
    def device(self) -> str:
        return self.requirement.device

    def cases(self, seeds: Sequence[int] = DEFAULT_SEEDS) -> List[Case]:
        """Every case of the grid, with the seed marker replaced by ``seeds``."""
        grid = {k: (list(seeds) if v == SEEDS else list(v)) for k, v in self.grid.items()}
        names = list(grid)
        points: List[Dict[str, Any]] = [
            dict(zip(names, values)) for values in itertools.product(*(grid[n] for n in names))
        ]
        for extra in self.extra_cases:
            extra = dict(extra)
            if extra.get("seed") == SEEDS:
                points.extend({**extra, "seed": s} for s in seeds)
            else:
                points.append(extra)
        return [Case(self, params) for params in points]


@dataclass(frozen=True)
class Case:
    """One probe at one grid point."""

    probe: Probe
    params: Mapping[str, Any]

    @property
    def params_json(self) -> str:
        return canonical_json(self.params)

    @property
    def key(self) -> str:
        """A stable identifier of the case, used to resume runs and name rows."""
        text = "\x1f".join((self.probe.key, self.probe.device, self.params_json))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def canonical_json(obj: Any) -> str:
    """The one JSON spelling of a parameter object: sorted keys, no spaces."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


_REGISTRY: Dict[str, Probe] = {}


def _source_version(func: ProbeFunc, grid: Mapping[str, Any], extra: Any) -> str:
    """Version = hash of the probe's source and grid, so edited probes never match old rows."""
    try:
        source = inspect.getsource(func)
    except (OSError, TypeError):  # pragma: no cover - source unavailable (frozen apps)
        source = func.__qualname__
    text = source + canonical_json({k: (v if v == SEEDS else list(v)) for k, v in grid.items()})
    text += repr(extra)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def probe(
    probe_id: Optional[str] = None,
    *,
    grid: Optional[Mapping[str, Sequence[Any]]] = None,
    library: Optional[str] = None,
    min_version: Optional[str] = None,
    device: str = "cpu",
    min_python: Optional[Tuple[int, int]] = None,
    kind: str = "generator",
    extra_cases: Iterable[Mapping[str, Any]] = (),
    name: Optional[str] = None,
    repeats: int = 2,
    invariance: Optional[str] = None,
) -> Any:
    """Register a probe.

    ``probe_id`` is the dotted public API the probe exercises (``torch.randn``).  Several
    probes may exercise one API (CPU and CUDA, global seed and explicit generator); they
    are told apart by their parameters, and registered under ``name`` when given (which
    defaults to the probe id, suffixed by the device for non-CPU probes).

    ``repeats`` is how often the worker executes each case in one process to check that
    it agrees with itself (run-to-run determinism); race-prone GPU kernels ask for more.

    ``kind`` is one of :data:`KINDS`.  ``invariance`` names a grid parameter whose values
    must all give the same result (chunks, batch, num_workers, layout, restore): the worker
    runs the case at each of them and records whether they agree.

    Usable bare (``@probe``; the id is the function name) or with arguments.
    """
    if callable(probe_id):  # bare @probe
        return probe()(probe_id)

    def decorator(func: ProbeFunc) -> ProbeFunc:
        pid = probe_id or func.__name__
        key = name or (pid if device == "cpu" else f"{pid}@{device}")
        if key in _REGISTRY:
            raise DuplicateProbe(key, _REGISTRY[key].func.__module__)
        if kind not in KINDS:
            raise RegistryError(f"probe {key!r}: kind {kind!r} is not one of {', '.join(KINDS)}")
        the_grid = dict(grid or {})
        if invariance is not None and invariance not in the_grid:
            raise RegistryError(f"probe {key!r}: invariance parameter {invariance!r} is not in its grid")
        extras = tuple(dict(e) for e in extra_cases)
        _REGISTRY[key] = Probe(
            key=key,
            id=pid,
            func=func,
            grid=the_grid,
            requirement=Requirement(library, min_version, device, min_python),
            version=_source_version(func, the_grid, extras),
            kind=kind,
            description=(inspect.getdoc(func) or "").split("\n")[0],
            extra_cases=extras,
            repeats=repeats,
            invariance=invariance,
        )
        return func

    return decorator


def get(key: str) -> Probe:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise RegistryError(f"no probe named {key!r}; see 'python -m audit list'") from None


def all_probes() -> Dict[str, Probe]:
    """A copy of the registry (registration key -> probe)."""
    return dict(_REGISTRY)


def select(patterns: Sequence[str] = ()) -> Dict[str, Probe]:
    """Probes whose registration key or probe id matches any glob in ``patterns``.

    No pattern selects everything.  A pattern that matches nothing is an error, so a
    typo never silently audits nothing.
    """
    probes = all_probes()
    if not patterns:
        return probes
    chosen: Dict[str, Probe] = {}
    for pattern in patterns:
        hits = {k: p for k, p in probes.items()
                if fnmatch.fnmatchcase(k, pattern) or fnmatch.fnmatchcase(p.id, pattern)}
        if not hits:
            raise RegistryError(f"no probe matches {pattern!r}; see 'python -m audit list'")
        chosen.update(hits)
    return {k: chosen[k] for k in probes if k in chosen}


def iter_cases(probes: Mapping[str, Probe], seeds: Sequence[int] = DEFAULT_SEEDS) -> Iterator[Case]:
    for p in probes.values():
        yield from p.cases(seeds)


def snapshot() -> Dict[str, Probe]:
    """Save the registry (tests register throw-away probes, then ``restore``)."""
    return copy.copy(_REGISTRY)


def restore(saved: Mapping[str, Probe]) -> None:
    _REGISTRY.clear()
    _REGISTRY.update(saved)


def reset() -> None:
    """Empty the registry (tests only)."""
    _REGISTRY.clear()
