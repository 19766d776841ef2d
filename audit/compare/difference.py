"""How two streams of one case differ, and where: structure, stream change, sparse, drift.

Pure: the judgement uses one stored row per stream, fetched by the shell
(:class:`~audit.compare.rows.Detail`): its dtype and shape, its sample (the same element
positions in both, since they depend only on the element count) and its block digests
(one per 64 KiB of output, which say *where* two outputs differ).  The kinds, most
severe first:

- ``structural``: dtype or shape differ;
- ``stream-change``: the sampled values are unrelated (beyond the drift threshold of
  :mod:`audit.compare.ulp`), or differ at all for integers and booleans; when the outputs
  agree up to a block and differ in every block after it, the report calls it a
  desynchronisation from that element on;
- ``sparse``: the sampled elements agree and some blocks differ: a few elements changed,
  by an unknown amount (were even a sixth of the elements different, sixteen sampled ones
  would all agree less than one time in twenty); the blocks say where;
- ``numerical-drift``: every sampled element within the drift threshold, at least one of
  them measurably apart, and every block that differs holding a sampled element that
  differs: never claimed beyond that evidence.  When some differing blocks hold no
  differing sampled element, the kind is None with the ULPs kept (``covered`` False): the
  reports say "within N ULP where sampled; k of n blocks differ", never drift.

Sampled elements that differ only in the sign of zero (0.0 vs -0.0) are distance 0: the
kind is None and ``zero_sign`` says so.  For drift, ``rtol`` and ``atol`` are the smallest
relative and absolute tolerances (as ``numpy.isclose`` reads them, the first stream the
desired one) that accept every sampled element.

When the samples agree and the blocks are unknown (files of schema 2) nothing is claimed:
the kind is None, and reports say the streams differ outside the sampled elements.
"""

from __future__ import annotations

import json
import math
import struct
from typing import Any, List, Optional, Sequence, Tuple

from audit.compare import ulp
from audit.compare.model import Difference, Measured
from audit.compare.rows import Detail
from audit.compare.trace import TraceDivergence, first_divergence
from audit.worker import distance
from audit.worker.fingerprint import decode_sample, sample_indices


def differing_blocks(a: Detail, b: Detail) -> Optional[List[int]]:
    """Indices of the blocks whose digests differ; None when the blocks cannot be lined up."""
    if a.block_elements != b.block_elements:
        return None
    return distance.differing_block_indices(a.blocks, b.blocks)


def classify_pair(a: Detail, b: Detail) -> Measured:
    """How ``b`` differs from ``a`` (two different fingerprints of one case)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return Measured(Difference.STRUCTURAL)
    where = _where(a, b)
    dtype = a.dtype or ""
    if (a.sample or "") != (b.sample or ""):
        measured = distance.compare_samples(a.sample or "", b.sample or "", dtype)
        if measured is None:  # integers, booleans: any difference in the values is a new stream
            return Measured(Difference.STREAM_CHANGE, *(None, None), *where)
        max_ulp, fraction = measured
        if max_ulp > 0 and not ulp.is_drift(max_ulp, dtype):
            return Measured(Difference.STREAM_CHANGE, max_ulp, fraction, *where)
        if max_ulp > 0:
            covered = _covered(a, b, where[2] is not None)
            rtol, atol = tolerances(a.sample or "", b.sample or "", dtype)
            kind = Difference.NUMERICAL_DRIFT if covered else None
            return Measured(kind, max_ulp, fraction, *where, covered=covered, rtol=rtol, atol=atol)
        if _only_zero_signs(a.sample or "", b.sample or "", dtype):
            return Measured(None, None, fraction, *where, zero_sign=True)
        # the bits differ at zero distance (NaN payloads): no drift to measure
    if where[3] is not None:  # the blocks say where; the agreeing sample says few elements differ
        return Measured(Difference.SPARSE if where[2] else None, None, None, *where)
    # strings, JSON, big integers: no element grid, no sample
    if not a.block_elements and not a.sample:
        return Measured(Difference.STREAM_CHANGE)
    return Measured(None)


def _elements(shape: Optional[str]) -> Optional[int]:
    """The element count of a stored shape ('[8, 4]'); None when it cannot be read."""
    try:
        dims = json.loads(shape or "")
    except ValueError:
        return None
    if not isinstance(dims, list) or not all(isinstance(d, int) and d >= 0 for d in dims):
        return None
    return math.prod(dims)


def _covered(a: Detail, b: Detail, blocks_known: bool) -> bool:
    """Whether the sampled elements that differ reach every block that differs (the whole
    output when it was sampled whole); False when that cannot be told."""
    n = _elements(a.shape)
    if n is None:
        return False
    index = sample_indices(n)
    xs, ys = (
        decode_sample(a.sample or "", a.dtype or ""),
        decode_sample(b.sample or "", b.dtype or ""),
    )
    if len(xs) != len(index) or len(ys) != len(index):
        return False
    if len(index) == n:  # the sample is the whole output
        return True
    blocks = differing_blocks(a, b) if blocks_known else None
    if blocks is None or not a.block_elements:
        return False
    seen = {i // a.block_elements for i, x, y in zip(index, xs, ys) if x != y}
    return set(blocks) <= seen


_FORMATS = {"float16": "<e", "float32": "<f", "float64": "<d"}


def _as_float(bits: int, dtype: str) -> float:
    if dtype == "bfloat16":
        return float(struct.unpack("<f", struct.pack("<I", bits << 16))[0])
    fmt = _FORMATS[dtype]
    return float(struct.unpack(fmt, bits.to_bytes(struct.calcsize(fmt), "little"))[0])


#: The real format of each part of a complex element.
_PART = {"complex64": "float32", "complex128": "float64"}


def _values(raw: List[Any], dtype: str) -> List[complex]:
    """The decoded sample's elements as numbers (complex ones with both parts)."""
    if dtype in _PART:
        parts = [distance.split_complex(v, dtype) for v in raw]
        return [complex(_as_float(r, _PART[dtype]), _as_float(i, _PART[dtype])) for r, i in parts]
    return [complex(_as_float(v, dtype), 0.0) for v in raw]


def tolerances(desired: str, actual: str, dtype: str) -> Tuple[Optional[float], Optional[float]]:
    """(rtol, atol): the smallest tolerance of each kind alone that accepts every sampled
    element of ``actual`` against ``desired`` (rtol None where a desired value is 0 and its
    counterpart is not; both None when the samples hold no finite number to measure)."""
    if dtype not in distance.FLOAT_FORMATS:
        return None, None
    pairs = [
        (x, y)
        for x, y in zip(
            _values(decode_sample(desired, dtype), dtype),
            _values(decode_sample(actual, dtype), dtype),
        )
        if all(math.isfinite(v) for v in (x.real, x.imag, y.real, y.imag))
    ]
    if not pairs:
        return None, None
    atol = max(abs(y - x) for x, y in pairs)
    if any(x == 0 and y != 0 for x, y in pairs):
        return None, atol
    rtol = max((abs(y - x) / abs(x) for x, y in pairs if x != 0), default=0.0)
    return rtol, atol


def _only_zero_signs(sample_a: str, sample_b: str, dtype: str) -> bool:
    """Whether every sampled element that differs is 0.0 on one side and -0.0 on the other."""
    if dtype not in distance.FLOAT_FORMATS:
        return False
    xs, ys = decode_sample(sample_a, dtype), decode_sample(sample_b, dtype)
    if not xs or len(xs) != len(ys):
        return False
    pairs = zip(_values(xs, dtype), _values(ys, dtype))
    differing = [p for p, x, y in zip(pairs, xs, ys) if x != y]
    return bool(differing) and all(x == 0 and y == 0 for x, y in differing)


def between(a: Detail, b: Detail) -> Tuple[Measured, Optional[TraceDivergence]]:
    """How ``b`` differs from ``a``; for trace probes, from the first op whose output differs
    (their own fingerprint covers the whole trace, their output alone may agree)."""
    if a.trace is not None and b.trace is not None:
        divergence = first_divergence(a.trace, b.trace)
        if divergence is not None:
            return Measured(divergence.difference, divergence.max_ulp), divergence
    return classify_pair(a, b), None


Where = Tuple[Optional[int], Optional[int], Optional[int], Optional[int]]


def _where(a: Detail, b: Detail) -> Where:
    """(first_difference, first_block, blocks_differing, blocks), each None when unknown."""
    blocks = differing_blocks(a, b)
    if blocks is None:
        return None, None, None, None
    count = len(a.blocks or b"") // distance.DIGEST
    if not blocks:
        return None, None, 0, count
    first = blocks[0]
    return first * (a.block_elements or 0), first, len(blocks), count


def combine(results: Sequence[Measured]) -> Optional[Measured]:
    """The most severe of several differences (the earliest located among equals), with the
    largest ULP distance and share seen over all of them."""
    if not results:
        return None
    worst = min(
        results,
        key=lambda r: (r.severity, r.first_block if r.first_block is not None else float("inf")),
    )
    distances = ulp.worst(
        [
            (r.max_ulp, r.fraction) if r.max_ulp is not None and r.fraction is not None else None
            for r in results
        ]
    )
    rtols = [r.rtol for r in results if r.rtol is not None]
    atols = [r.atol for r in results if r.atol is not None]
    worst = worst._replace(
        rtol=max(rtols) if rtols and worst.rtol is not None else worst.rtol,
        atol=max(atols) if atols and worst.atol is not None else worst.atol,
    )
    if distances is None:
        return worst
    return worst._replace(max_ulp=distances[0], fraction=distances[1])


def nearest(new: Detail, known: Sequence[Detail]) -> Optional[int]:
    """Index of the stream in ``known`` closest to ``new``: the least severe difference, then
    the fewest ULP, then the fewest differing blocks."""
    if not known:
        return None
    scored = [between(k, new)[0] for k in known]
    return min(
        range(len(known)),
        key=lambda i: (
            -scored[i].severity,
            _or_inf(scored[i].max_ulp),
            _or_inf(scored[i].blocks_differing),
        ),
    )


def _or_inf(value: Optional[float]) -> float:
    return float("inf") if value is None else value
