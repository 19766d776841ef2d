"""Which environment fields explain a split between streams.

A field *explains* a split when every value it takes maps to one stream and it takes at
least two values.  The candidates are ranked best first: fewest distinct values, then
the field's place in :data:`PRIORITY` (causes a person can act on before the derived
ids).  A derived id (``machine_id``) is dropped when a meaningful field explains the
same split.  When no single field explains it, pairs are tried; when nothing does, the
explanation says so.  Null values are a value of their own, shown as ``unset``.
"""

from __future__ import annotations

import itertools
import re
from dataclasses import dataclass
from typing import Any, Dict, Hashable, Iterable, List, Mapping, Sequence, Tuple

from audit.worker.environment import FIELDS as ENV_FIELDS
from audit.worker.records import UNSET, shown

#: Fields that are ids derived from others; shown only when nothing meaningful explains a split.
DERIVED = ("machine_id",)

#: Ranking among fields with equally many values: the architecture and the emulated CPU class
#: (a different arch changes every kernel; docs/arm.md), dispatch level and settings, library
#: versions, threads and modes, hardware, then the rest in FIELDS order, derived ids last.
PRIORITY: Tuple[str, ...] = (
    "device",
    "arch",
    "QEMU_CPU",
    "cpu_capability",
    "ATEN_CPU_CAPABILITY",
    "torch_version",
    "numpy_version",
    "pandas_version",
    "python_version",
    "num_threads",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "OPENBLAS_NUM_THREADS",
    "deterministic_algorithms",
    "MKL_CBWR",
    "OPENBLAS_CORETYPE",
    "NPY_DISABLE_CPU_FEATURES",
    "NPY_ENABLE_CPU_FEATURES",
    "CUBLAS_WORKSPACE_CONFIG",
    "PYTHONHASHSEED",
    "openblas_core",
    "mkl_code_path",
    "numpy_simd",
    "blas",
    "openblas_config",
    "gpu_name",
    "gpu_compute_capability",
    "cuda_version",
    "cudnn_version",
    "driver_version",
    "cpu_model",
)
_RANK = {
    name: i for i, name in enumerate([*PRIORITY, *(f for f in ENV_FIELDS if f not in PRIORITY)])
}


def names(envs: Sequence[Dict[str, Any]]) -> List[str]:
    """The fields of ``envs``, best first (:func:`rank`; the entries of ``settings``, such as
    ``DNNL_MAX_CPU_ISA``, by name among themselves)."""
    return sorted({name for e in envs for name in e}, key=lambda name: (rank(name), name))


#: Where the entries of ``settings`` and ``process_state`` rank: among the settings a person
#: made (after the named variables), before the kernel and hardware fields.
_ENTRY_RANK = _RANK["PYTHONHASHSEED"] + 0.5


def rank(name: str) -> float:
    """Where a field stands in :data:`PRIORITY` (then FIELDS order; the entries of settings
    after the named variables; derived ids last)."""
    return len(_RANK) + 1 if name in DERIVED else _RANK.get(name, _ENTRY_RANK)


@dataclass(frozen=True)
class Attribution:
    """The fields that explain a split, best first, and the split in words."""

    axes: List[str]  # field names; a pair is written "a+b"
    explanation: str


def natural_key(value: Any) -> Tuple[Any, ...]:
    """Sort '2.4.1' before '2.13.0' and 'unset' first."""
    if value is None or value == UNSET:
        return ((0, ""),)
    return tuple(
        (1, int(p), "") if p.isdigit() else (2, 0, p) for p in re.split(r"(\d+)", str(value)) if p
    )


def explains(pairs: Sequence[Tuple[Hashable, Hashable]]) -> bool:
    """Whether (value, stream) pairs form a split: each value one stream, at least two values."""
    streams: Dict[Hashable, Hashable] = {}
    for value, stream in pairs:
        if streams.setdefault(value, stream) != stream:
            return False
    return len(streams) >= 2


def attribute(envs: Sequence[Dict[str, Any]], streams: Sequence[Hashable]) -> Attribution:
    """Explain how ``streams[i]`` (a fingerprint) follows ``envs[i]`` (field -> value)."""
    fields = names(envs)
    varying = [f for f in fields if len({e.get(f) for e in envs}) > 1]
    single = [f for f in varying if explains([(e.get(f), s) for e, s in zip(envs, streams)])]
    if single:
        meaningful = [f for f in single if f not in DERIVED]
        single = sorted(
            meaningful or single, key=lambda f: (len({e.get(f) for e in envs}), rank(f))
        )
        return Attribution(single, f"split by {single[0]}: {_groups(envs, streams, (single[0],))}")
    pairs = [
        (a, b)
        for a, b in itertools.combinations(varying, 2)
        if a not in DERIVED
        and b not in DERIVED
        and explains([((e.get(a), e.get(b)), s) for e, s in zip(envs, streams)])
    ]
    if pairs:
        pairs.sort(
            key=lambda p: (len({(e.get(p[0]), e.get(p[1])) for e in envs}), rank(p[0]) + rank(p[1]))
        )
        best = pairs[0]
        words = f"split by {best[0]} + {best[1]}: {_groups(envs, streams, best)}"
        return Attribution([f"{a}+{b}" for a, b in pairs], words)
    detail = (
        f" (fields that vary: {', '.join(varying)})" if varying else " (the environments are equal)"
    )
    return Attribution([], "no environment field or pair of fields explains the split" + detail)


def _groups(
    envs: Sequence[Dict[str, Any]], streams: Sequence[Hashable], fields: Tuple[str, ...]
) -> str:
    """'2.4.1 | 2.13.0, 2.14.1': the values of each stream, streams separated by ' | '."""
    by_stream: Dict[Hashable, set] = {}
    for e, s in zip(envs, streams):
        by_stream.setdefault(s, set()).add(tuple(e.get(f) for f in fields))
    texts = []
    for values in by_stream.values():
        ordered = sorted(values, key=lambda v: tuple(natural_key(x) for x in v))
        words = ", ".join("/".join(shown(x) for x in v) for v in ordered)
        texts.append((tuple(natural_key(x) for x in ordered[0]), words))
    return " | ".join(text for _, text in sorted(texts))


#: Baseline mode's "why", best first: the architecture when it differs (every kernel, BLAS and
#: dispatch level follows from it: docs/arm.md), the kernels in force (BLAS core, MKL path), the
#: CPU and its class (architecture, emulator, dispatch level, the settings that force them), then
#: the rest in :data:`PRIORITY` order.
BLAME: Tuple[str, ...] = (
    "arch",
    "openblas_core",
    "mkl_code_path",
    "blas",
    "cpu_model",
    "emulator",
    "cpu_capability",
    "ATEN_CPU_CAPABILITY",
    "OPENBLAS_CORETYPE",
    "MKL_CBWR",
    "numpy_simd",
    "NPY_DISABLE_CPU_FEATURES",
    "NPY_ENABLE_CPU_FEATURES",
    "settings",
)


def blame_rank(name: str) -> Tuple[int, float]:
    """Where a field stands as a cause of a new stream: :data:`BLAME` first, then :func:`rank`."""
    return (BLAME.index(name) if name in BLAME else len(BLAME), rank(name))


def env_distance(a: Dict[str, Any], b: Dict[str, Any]) -> int:
    """How many recorded fields (derived ids aside) two environments disagree on."""
    return sum(
        1 for name in {*a, *b} if name not in DERIVED and shown(a.get(name)) != shown(b.get(name))
    )


def nearest_environments(
    mine: Sequence[Dict[str, Any]], theirs: Sequence[int], envs: Sequence[Dict[str, Any]]
) -> List[int]:
    """The environments among ``theirs`` (ids into ``envs``) closest to any of ``mine``: the
    fewest fields that differ; every one at that distance."""
    if not theirs or not mine:
        return list(theirs)
    distance = {e: min(env_distance(m, envs[e]) for m in mine) for e in theirs}
    best = min(distance.values())
    return sorted(e for e in theirs if distance[e] == best)


def differing_fields(
    mine: Sequence[Dict[str, Any]], theirs: Sequence[Dict[str, Any]]
) -> Dict[str, List[str]]:
    """The fields whose values in ``mine`` none of ``theirs`` share, best first: field ->
    [these values, those values] (each joined by ", "); derived ids left out.

    Baseline mode's "why": where this machine's run differs from the nearest reference
    environments (a value some of them had cannot be why it differs), in :data:`BLAME` order.
    """
    out: Dict[str, List[str]] = {}
    ordered = sorted({n for e in [*mine, *theirs] for n in e}, key=lambda n: (blame_rank(n), n))
    for name in ordered:
        if name in DERIVED:
            continue
        a = sorted({shown(e.get(name)) for e in mine}, key=natural_key)
        b = sorted({shown(e.get(name)) for e in theirs}, key=natural_key)
        if not set(a) & set(b):
            out[name] = [", ".join(a), ", ".join(b)]
    return out


def changed_with(
    before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]], fields: Iterable[str]
) -> Dict[str, Tuple[List[str], List[str]]]:
    """The fields among ``fields`` whose values differ between two groups of environments (the
    runs before and after a version step: what else changed with the version), in the order
    given: field -> (the values before, the values after), each shown and in natural order.

    ``compare --upgrade`` names them as confounders of each step, and ``advise`` of each
    release in the history.
    """
    out: Dict[str, Tuple[List[str], List[str]]] = {}
    for name in fields:
        a = {shown(e.get(name)) for e in before}
        b = {shown(e.get(name)) for e in after}
        if a != b:
            out[name] = (sorted(a, key=natural_key), sorted(b, key=natural_key))
    return out
