"""The probe registry: probes register themselves by their public probe id.

A *probe* is a small function that exercises one public API with seeded input and
returns what that API produced.  A *case* is one point of the probe's parameter grid.

The registry follows nox's session registry: a decorator usable with or without
arguments, a private dict, copies on read, ``reset`` for tests, and an error on a
duplicate id.  This module is part of the worker side: standard library only.
"""

from __future__ import annotations

import ast
import copy
import enum
import fnmatch
import hashlib
import inspect
import itertools
import json
import sys
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Tuple

from audit import domains
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


class Sizes(str, enum.Enum):
    """Size panels: which of a probe's cases a run executes.

    ``default`` is the grid (and extra cases) every run executes; ``large`` holds the
    real-world sizes too slow for the default catalogue (1024x1024 QR, 4096 matmul, 1e7
    reductions), run only on request (``--sizes large``).  A panel's cases differ from the
    default's in their parameters (the sizes), so results of two panels never mix.
    """

    DEFAULT = "default"
    LARGE = "large"


DEFAULT_SIZES: Tuple[Sizes, ...] = (Sizes.DEFAULT,)


def parse_sizes(text: str) -> Tuple[Sizes, ...]:
    """'default,large' -> the panels, in order, once each; an unknown name is a ValueError."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    known = [s.value for s in Sizes]
    unknown = [n for n in names if n not in known]
    if unknown or not names:
        raise ValueError(
            f"size panel must be one or more of {', '.join(known)} (comma-separated), not {text!r}"
        )
    return tuple(Sizes(n) for n in dict.fromkeys(names))


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
    #: size panel (other than default) -> grid entries it replaces; see :class:`Sizes`
    sizes: Mapping[str, Mapping[str, Sequence[Any]]] = field(default_factory=dict)
    #: parameter -> where ``explore`` may draw it from (:mod:`audit.domains`); not in the version
    search: Mapping[str, domains.Domain] = field(default_factory=dict)
    #: the family reports group it under (``family=``, else its module's ``FAMILY``); None: by
    #: its id
    family: Optional[str] = None

    @property
    def device(self) -> str:
        return self.requirement.device

    def cases(
        self, seeds: Sequence[int] = DEFAULT_SEEDS, sizes: Sequence[Sizes] = DEFAULT_SIZES
    ) -> List[Case]:
        """Every case of the chosen size panels, with the seed marker replaced by ``seeds``.

        The default panel is the grid plus the extra cases; another panel is the grid with
        the entries that panel replaces, and nothing for a probe without that panel.
        """
        points: List[Dict[str, Any]] = []
        for panel in sizes:
            if panel is Sizes.DEFAULT:
                points += _grid_points(self.grid, seeds)
                points += _extra_points(self.extra_cases, seeds)
            elif panel.value in self.sizes:
                points += _grid_points({**self.grid, **self.sizes[panel.value]}, seeds)
        # a point in two panels runs once, first place
        unique = {canonical_json(p): p for p in points}
        return [Case(self, params) for params in unique.values()]


def _grid_points(grid: Mapping[str, Any], seeds: Sequence[int]) -> List[Dict[str, Any]]:
    """The cartesian product of a grid, the seed marker replaced by ``seeds``."""
    lists = {k: (list(seeds) if v == SEEDS else list(v)) for k, v in grid.items()}
    names = list(lists)
    return [dict(zip(names, values)) for values in itertools.product(*(lists[n] for n in names))]


def _extra_points(
    extra_cases: Sequence[Mapping[str, Any]], seeds: Sequence[int]
) -> List[Dict[str, Any]]:
    points: List[Dict[str, Any]] = []
    for extra in extra_cases:
        if extra.get("seed") == SEEDS:
            points.extend({**extra, "seed": s} for s in seeds)
        else:
            points.append(dict(extra))
    return points


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
    text = without_search(source) + canonical_json(
        {k: (v if v == SEEDS else list(v)) for k, v in grid.items()}
    )
    text += repr(extra)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def without_search(source: str) -> str:
    """``source`` with the ``search=`` keyword of its decorators cut out, byte for byte.

    Declaring search domains (or changing them) must not change a probe's version: the
    stored results stay comparable.  The keyword is cut from the end of the argument before
    it (or, first, up to the argument after it), so the text is exactly what it was without
    it.  Source without such a keyword is returned unchanged.
    """
    if "search" not in source:
        return source
    data = source.encode()
    indented = data[:1].isspace()
    try:
        tree = ast.parse((b"if 1:\n" + data) if indented else data)
    except SyntaxError:
        return source
    lines = data.splitlines(keepends=True)
    starts = [0]
    for line in lines:
        starts.append(starts[-1] + len(line))
    shift = 1 if indented else 0

    def offset(lineno: int, col: int) -> int:
        return starts[lineno - 1 - shift] + col

    cuts = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        for call in (d for d in node.decorator_list if isinstance(d, ast.Call)):
            parts: List[Any] = sorted(
                [*call.args, *call.keywords], key=lambda n: (n.lineno, n.col_offset)
            )
            for i, part in enumerate(parts):
                if isinstance(part, ast.keyword) and part.arg == "search":
                    end = offset(part.end_lineno or part.lineno, part.end_col_offset or 0)
                    if i > 0:
                        before = parts[i - 1]
                        cuts.append(
                            (
                                offset(
                                    before.end_lineno or before.lineno, before.end_col_offset or 0
                                ),
                                end,
                            )
                        )
                    elif i + 1 < len(parts):
                        cuts.append(
                            (
                                offset(part.lineno, part.col_offset),
                                offset(parts[i + 1].lineno, parts[i + 1].col_offset),
                            )
                        )
                    else:  # the only argument: keep the parentheses, drop a trailing comma
                        close = offset(
                            call.end_lineno or call.lineno, (call.end_col_offset or 1) - 1
                        )
                        cuts.append((offset(part.lineno, part.col_offset), close))
        break  # the probe function's own decorators only
    for start, end in sorted(cuts, reverse=True):
        data = data[:start] + data[end:]
    return data.decode()


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
    sizes: Optional[Mapping[str, Mapping[str, Sequence[Any]]]] = None,
    search: Optional[Mapping[str, domains.Domain]] = None,
    family: Optional[str] = None,
) -> Any:
    """Register a probe.

    ``probe_id`` is the dotted public API the probe exercises (``torch.randn``).  Several
    probes may exercise one API (CPU and CUDA, global seed and explicit generator); they
    are told apart by their parameters, and registered under ``name`` when given (which
    defaults to the probe id, suffixed by the device for non-CPU probes).

    ``repeats`` is how often the worker executes each case in one process to check that
    it agrees with itself (run-to-run determinism); race-prone GPU kernels ask for more.

    ``kind`` is one of :data:`KINDS`.  ``invariance`` names a grid parameter whose values
    must all give the same result (chunks, batch, num_workers, layout, restore): each of its
    grid values is itself a list of at least two distinct values, the first the reference
    (``grid={"chunks": [[1000, 1, 3, 7]]}``); the worker calls the probe with each of them
    and records whether the results agree (:mod:`audit.worker.invariance`).

    ``sizes`` maps a size panel other than ``default`` (see :class:`Sizes`) to the grid
    entries it replaces, e.g. ``sizes={"large": {"shape": [[1024, 1024]]}}``.  Panels add
    cases, whose parameters tell them apart, so the panels' values are not hashed into the
    probe version (adding a large size leaves the default cases comparable).

    ``search`` maps grid parameters to the domains ``explore`` draws them from
    (:mod:`audit.domains`: ``integers(1, 10**7)``, ``sampled_from([...])``); it is cut out of
    the source before the version is hashed (:func:`without_search`), so declaring domains
    leaves every stored result comparable.

    ``family`` names the family reports group the probe under ("numpy legacy", "jax").  A
    probe that names none takes its module's ``FAMILY`` (a catalogue module declares it once,
    so its decorators, whose source is the probe's version, stay as they are); a probe of a
    module without one is grouped by its id (:func:`audit.compare.judgements.family`).  Unlike
    ``search``, a ``family=`` keyword is part of the hashed source.

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
            raise RegistryError(
                f"probe {key!r}: invariance parameter {invariance!r} is not in its grid"
            )
        extras = tuple(dict(e) for e in extra_cases)
        panels = {k: dict(v) for k, v in (sizes or {}).items()}
        _check_panels(key, panels)
        the_search = dict(search or {})
        domains.check(key, the_search, the_grid, invariance)
        if invariance is not None:
            listed = [
                v for g in (the_grid, *panels.values()) if invariance in g for v in g[invariance]
            ]
            _check_invariance(
                key, invariance, listed + [e[invariance] for e in extras if invariance in e]
            )
        the_family = family or getattr(sys.modules.get(func.__module__), "FAMILY", None)
        if the_family is not None and (not isinstance(the_family, str) or not the_family.strip()):
            raise RegistryError(
                f"probe {key!r}: family must be a non-empty string, not {the_family!r}"
            )
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
            sizes=panels,
            search=the_search,
            family=the_family,
        )
        return func

    return decorator


def _check_panels(key: str, panels: Mapping[str, Any]) -> None:
    known = {s.value for s in Sizes} - {Sizes.DEFAULT.value}
    for panel in panels:
        if panel not in known:
            raise RegistryError(
                f"probe {key!r}: size panel {panel!r} is not one of {', '.join(sorted(known))}"
            )


def _check_invariance(key: str, name: str, values: Sequence[Any]) -> None:
    """Each value of an invariance parameter lists at least two distinct values to compare."""
    for listed in values:
        spelled = [canonical_json(v) for v in listed] if isinstance(listed, (list, tuple)) else []
        if len(spelled) < 2 or len(set(spelled)) != len(spelled):
            raise RegistryError(
                f"probe {key!r}: each {name!r} value must list at least two distinct "
                f"values to compare (the first is the reference), not {listed!r}"
            )


def get(key: str) -> Probe:
    try:
        return _REGISTRY[key]
    except KeyError:
        raise RegistryError(f"no probe named {key!r}; see 'python -m audit list'") from None


def all_probes() -> Dict[str, Probe]:
    """A copy of the registry (registration key -> probe)."""
    return dict(_REGISTRY)


def families() -> Dict[str, str]:
    """Registration key -> declared family, for every probe that declares one."""
    return {k: p.family for k, p in _REGISTRY.items() if p.family is not None}


def select(patterns: Sequence[str] = (), among: Optional[Iterable[str]] = None) -> Dict[str, Probe]:
    """Probes whose registration key or probe id matches any glob in ``patterns``.

    No pattern selects everything (of ``among``, the keys to choose from, when given: the
    probes of ``--probes-from``).  A pattern that matches nothing is an error, so a typo
    never silently audits nothing.
    """
    probes = all_probes()
    if among is not None:
        keys = set(among)
        probes = {k: p for k, p in probes.items() if k in keys}
    if not patterns:
        return probes
    chosen: Dict[str, Probe] = {}
    for pattern in patterns:
        hits = {
            k: p
            for k, p in probes.items()
            if fnmatch.fnmatchcase(k, pattern) or fnmatch.fnmatchcase(p.id, pattern)
        }
        if not hits and among is not None:
            raise RegistryError(
                f"no probe of --probes-from matches {pattern!r} (the catalogue runs only with "
                "--catalogue); see 'python -m audit list --probes-from ...'"
            )
        if not hits:
            raise RegistryError(f"no probe matches {pattern!r}; see 'python -m audit list'")
        chosen.update(hits)
    return {k: chosen[k] for k in probes if k in chosen}


def iter_cases(
    probes: Mapping[str, Probe],
    seeds: Sequence[int] = DEFAULT_SEEDS,
    sizes: Sequence[Sizes] = DEFAULT_SIZES,
) -> Iterator[Case]:
    for p in probes.values():
        yield from p.cases(seeds, sizes)


def snapshot() -> Dict[str, Probe]:
    """Save the registry (tests register throw-away probes, then ``restore``)."""
    return copy.copy(_REGISTRY)


def restore(saved: Mapping[str, Probe]) -> None:
    _REGISTRY.clear()
    _REGISTRY.update(saved)


def reset() -> None:
    """Empty the registry (tests only)."""
    _REGISTRY.clear()
