"""Distances in units in the last place (ULPs) between sampled elements, and drift vs change.

A float's bit pattern is mapped to an integer that is monotone in the float's value:
``+x -> magnitude bits``, ``-x -> -(magnitude bits)``.  The ULP distance of two floats of
one dtype is the difference of their mapped integers: adjacent floats are 1 apart, the
largest finite value and infinity are 1 apart, and a distance across zero counts the
floats on both sides.  Conventions:

- ``-0.0`` and ``0.0`` map to the same integer: distance 0.  They still count as a
  *differing* element (their bits differ, and the fingerprint saw that).
- NaN vs NaN (any payload or sign) is distance 0; NaN vs a number is infinitely far.
- complex values: the larger of the real-part and imaginary-part distances.

Drift thresholds (:data:`DRIFT_MAX_ULP`): two streams are the *same stream with drifted
last bits* when every sampled element is at most ``2 ** (mantissa_bits - 7)`` ULPs from its
counterpart, i.e. the values agree to a relative 2**-7 (about 0.8 %) or better.  Unrelated
random values are millions of ULPs apart for float32 (the exponent or top mantissa bits
differ), so the threshold separates "a different vectorised log()" from "a different
stream".  bfloat16 and float16 get a floor of 2 and 8 ULPs.
"""

from __future__ import annotations

from typing import Any, List, Optional, Sequence, Tuple

from audit.worker.fingerprint import decode_sample

#: dtype -> (exponent bits, mantissa bits) of the IEEE-like float formats.
FLOAT_FORMATS = {
    "float16": (5, 10),
    "bfloat16": (8, 7),
    "float32": (8, 23),
    "float64": (11, 52),
    "complex64": (8, 23),
    "complex128": (11, 52),
}

#: Largest ULP distance (every sampled element) still called numerical drift, per dtype.
DRIFT_MAX_ULP = {name: max(2, 2 ** (mant - 7)) for name, (_, mant) in FLOAT_FORMATS.items()}

INFINITE = float("inf")


def _width(dtype: str) -> int:
    exp, mant = FLOAT_FORMATS[dtype]
    return 1 + exp + mant


def ordered(bits: int, dtype: str) -> Optional[int]:
    """The monotone integer of a float's bit pattern; None for NaN."""
    exp_bits, mant_bits = FLOAT_FORMATS[dtype]
    width = 1 + exp_bits + mant_bits
    magnitude = bits & ((1 << (width - 1)) - 1)
    exponent = magnitude >> mant_bits
    if exponent == (1 << exp_bits) - 1 and magnitude & ((1 << mant_bits) - 1):
        return None
    return -magnitude if bits >> (width - 1) else magnitude


def ulp_distance(a: int, b: int, dtype: str) -> float:
    """ULPs between two real floats given as raw bits (see the module doc for conventions)."""
    oa, ob = ordered(a, dtype), ordered(b, dtype)
    if oa is None or ob is None:
        return 0.0 if oa is None and ob is None else INFINITE
    return float(abs(oa - ob))


def _split_complex(value: Any, dtype: str) -> Tuple[int, int]:
    """complex64 decodes as one 64-bit word (real low), complex128 as a pair of words."""
    if dtype == "complex128":
        return value[0], value[1]
    return value & 0xFFFFFFFF, value >> 32


def element_distance(a: Any, b: Any, dtype: str) -> float:
    if dtype.startswith("complex"):
        (ar, ai), (br, bi) = _split_complex(a, dtype), _split_complex(b, dtype)
        return max(ulp_distance(ar, br, dtype), ulp_distance(ai, bi, dtype))
    return ulp_distance(a, b, dtype)


def compare_samples(sample_a: str, sample_b: str, dtype: str) -> Optional[Tuple[float, float]]:
    """(max ULP distance, fraction of sampled elements whose bits differ) or None.

    None when the dtype is not a float format or the samples cannot be lined up (absent,
    or of different lengths); the caller then treats a difference as a stream change.
    """
    if dtype not in FLOAT_FORMATS:
        return None
    a: List[Any] = decode_sample(sample_a or "", dtype)
    b: List[Any] = decode_sample(sample_b or "", dtype)
    if not a or len(a) != len(b):
        return None
    distances = [element_distance(x, y, dtype) for x, y in zip(a, b)]
    differing = sum(1 for x, y in zip(a, b) if x != y)
    return max(distances), differing / len(a)


def is_drift(max_ulp: float, dtype: str) -> bool:
    """Whether a largest sampled distance is small enough to be last-bit drift."""
    return dtype in DRIFT_MAX_ULP and max_ulp <= DRIFT_MAX_ULP[dtype]


def worst(distances: Sequence[Optional[Tuple[float, float]]]) -> Optional[Tuple[float, float]]:
    """The largest max-ULP and largest fraction over several stream pairs."""
    known = [d for d in distances if d is not None]
    if not known:
        return None
    return max(d[0] for d in known), max(d[1] for d in known)
