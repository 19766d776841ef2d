"""How the streams of a divergent case differ: structure, unrelated values, or last-bit drift.

Pure: the judgement uses the stored sample of one row per stream, fetched by the shell
(:class:`~audit.compare.rows.Detail`).  Samples of the same shape
share their indices (they depend only on the element count), so element i of one sample
lines up with element i of the other.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from audit.compare import ulp
from audit.compare.model import Difference
from audit.compare.rows import Detail

_SEVERITY = list(Difference)  # most severe first


def classify_pair(a: Detail, b: Detail) -> Tuple[Difference, Optional[Tuple[float, float]]]:
    """The difference between two streams, and (max ULP, fraction differing) where measurable."""
    if a.dtype != b.dtype or a.shape != b.shape:
        return Difference.STRUCTURAL, None
    dtype = a.dtype or ""
    distance = ulp.compare_samples(a.sample or "", b.sample or "", dtype)
    if distance is None:  # integers, booleans, strings, or no sample: any difference is a new stream
        return Difference.STREAM_CHANGE, None
    kind = Difference.NUMERICAL_DRIFT if ulp.is_drift(distance[0], dtype) else Difference.STREAM_CHANGE
    return kind, distance


def classify(reference: Detail, others: Sequence[Detail]) -> Tuple[Optional[Difference], Optional[Tuple[float, float]]]:
    """The most severe difference of ``others`` from ``reference``, with the worst distances."""
    if not others:
        return None, None
    results = [classify_pair(reference, other) for other in others]
    kind = min((k for k, _ in results), key=_SEVERITY.index)
    return kind, ulp.worst([d for _, d in results])
