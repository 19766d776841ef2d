"""Drift or change: when a ULP distance between sampled elements is last-bit drift.

The distances themselves (and their conventions) are :mod:`audit.worker.distance`.

Drift thresholds (:data:`DRIFT_MAX_ULP`): two streams are the *same stream with drifted
last bits* when every sampled element is at most ``2 ** (mantissa_bits - 7)`` ULPs from its
counterpart, i.e. the values agree to a relative 2**-7 (about 0.8 %) or better.  Unrelated
random values are millions of ULPs apart for float32 (the exponent or top mantissa bits
differ), so the threshold separates "a different vectorised log()" from "a different
stream".  bfloat16 and float16 get a floor of 2 and 8 ULPs.
"""

from __future__ import annotations

from typing import Optional, Sequence, Tuple

from audit.worker.distance import FLOAT_FORMATS

#: Largest ULP distance (every sampled element) still called numerical drift, per dtype.
DRIFT_MAX_ULP = {name: max(2, 2 ** (mant - 7)) for name, (_, mant) in FLOAT_FORMATS.items()}


def is_drift(max_ulp: float, dtype: str) -> bool:
    """Whether a largest sampled distance is small enough to be last-bit drift."""
    return dtype in DRIFT_MAX_ULP and max_ulp <= DRIFT_MAX_ULP[dtype]


def worst(distances: Sequence[Optional[Tuple[float, float]]]) -> Optional[Tuple[float, float]]:
    """The largest max-ULP and largest fraction over several stream pairs."""
    known = [d for d in distances if d is not None]
    if not known:
        return None
    return max(d[0] for d in known), max(d[1] for d in known)
