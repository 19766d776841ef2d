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
- ``numerical-drift``: every sampled element within the drift threshold and at least one
  of them measurably apart: never claimed without that ULP evidence.

When the samples agree and the blocks are unknown (files of schema 2) nothing is claimed:
the kind is None, and reports say the streams differ outside the sampled elements.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

from audit.compare import ulp
from audit.compare.model import Difference
from audit.compare.rows import Detail
from audit.compare.trace import TraceDivergence, first_divergence
from audit.worker import distance

_SEVERITY = list(Difference)  # most severe first


class Located(NamedTuple):
    """How one stream differs from another, and where (None: unknown)."""

    kind: Optional[Difference]
    max_ulp: Optional[float] = None
    fraction: Optional[float] = None  # share of sampled elements whose bits differ
    first_difference: Optional[int] = None  # first element of the first differing block
    first_block: Optional[int] = None
    blocks_differing: Optional[int] = None
    blocks: Optional[int] = None

    @property
    def severity(self) -> int:
        """0 for the most severe kind; unknown counts as least severe."""
        return _SEVERITY.index(self.kind) if self.kind is not None else len(_SEVERITY)


def differing_blocks(a: Detail, b: Detail) -> Optional[List[int]]:
    """Indices of the blocks whose digests differ; None when the blocks cannot be lined up."""
    if a.block_elements != b.block_elements:
        return None
    return distance.differing_block_indices(a.blocks, b.blocks)


def classify_pair(a: Detail, b: Detail) -> Located:
    """How ``b`` differs from ``a`` (two different fingerprints of one case)."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return Located(Difference.STRUCTURAL)
    where = _where(a, b)
    dtype = a.dtype or ""
    if (a.sample or "") != (b.sample or ""):
        measured = distance.compare_samples(a.sample or "", b.sample or "", dtype)
        if measured is None:  # integers, booleans: any difference in the values is a new stream
            return Located(Difference.STREAM_CHANGE, *(None, None), *where)
        max_ulp, fraction = measured
        if max_ulp > 0:
            kind = Difference.NUMERICAL_DRIFT if ulp.is_drift(max_ulp, dtype) else Difference.STREAM_CHANGE
            return Located(kind, max_ulp, fraction, *where)
        # the bits differ at zero distance (-0.0 and 0.0, NaN payloads): no drift to measure
    if where[3] is not None:  # the blocks say where; the agreeing sample says few elements differ
        return Located(Difference.SPARSE if where[2] else None, None, None, *where)
    if not a.block_elements and not a.sample:  # strings, JSON, big integers: no element grid, no sample
        return Located(Difference.STREAM_CHANGE)
    return Located(None)


def between(a: Detail, b: Detail) -> Tuple[Located, Optional[TraceDivergence]]:
    """How ``b`` differs from ``a``; for trace probes, from the first op whose output differs
    (their own fingerprint covers the whole trace, their output alone may agree)."""
    if a.trace is not None and b.trace is not None:
        divergence = first_divergence(a.trace, b.trace)
        if divergence is not None:
            return Located(divergence.difference, divergence.max_ulp), divergence
    return classify_pair(a, b), None


def _where(a: Detail, b: Detail) -> tuple:
    """(first_difference, first_block, blocks_differing, blocks), each None when unknown."""
    blocks = differing_blocks(a, b)
    if blocks is None:
        return None, None, None, None
    count = len(a.blocks or b"") // distance.DIGEST
    if not blocks:
        return None, None, 0, count
    first = blocks[0]
    return first * (a.block_elements or 0), first, len(blocks), count


def combine(results: Sequence[Located]) -> Optional[Located]:
    """The most severe of several differences (the earliest located among equals), with the
    largest ULP distance and share seen over all of them."""
    if not results:
        return None
    worst = min(results, key=lambda r: (r.severity, r.first_block if r.first_block is not None else float("inf")))
    distances = ulp.worst([(r.max_ulp, r.fraction) if r.max_ulp is not None and r.fraction is not None else None
                           for r in results])
    if distances is None:
        return worst
    return worst._replace(max_ulp=distances[0], fraction=distances[1])


def nearest(new: Detail, known: Sequence[Detail]) -> Optional[int]:
    """Index of the stream in ``known`` closest to ``new``: the least severe difference, then
    the fewest ULP, then the fewest differing blocks."""
    if not known:
        return None
    scored = [between(k, new)[0] for k in known]
    return min(range(len(known)), key=lambda i: (-scored[i].severity, _or_inf(scored[i].max_ulp),
                                                 _or_inf(scored[i].blocks_differing)))


def _or_inf(value: Optional[float]) -> float:
    return float("inf") if value is None else value
