"""How two fingerprints of one output differ: ULP distances between sampled elements, and blocks.

A float's bit pattern is mapped to an integer that is monotone in the float's value:
``+x -> magnitude bits``, ``-x -> -(magnitude bits)``.  The ULP distance of two floats of
one dtype is the difference of their mapped integers: adjacent floats are 1 apart, the
largest finite value and infinity are 1 apart, and a distance across zero counts the
floats on both sides.  Conventions:

- ``-0.0`` and ``0.0`` map to the same integer: distance 0.  They still count as a
  *differing* element (their bits differ, and the fingerprint saw that).
- NaN vs NaN (any payload or sign) is distance 0; NaN vs a number is infinitely far.
- complex values: the larger of the real-part and imaginary-part distances.

The worker measures a second execution that disagrees with the first with these functions,
and compare (:mod:`audit.compare.ulp`, :mod:`audit.compare.difference`) measures two
streams with them: pure, the standard library only.
"""

from __future__ import annotations

from typing import Any, List, Optional, Tuple

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

INFINITE = float("inf")
DIGEST = 8  # bytes per block digest (xxh3-64)


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


def split_complex(value: Any, dtype: str) -> Tuple[int, int]:
    """complex64 decodes as one 64-bit word (real low), complex128 as a pair of words."""
    if dtype == "complex128":
        return value[0], value[1]
    return value & 0xFFFFFFFF, value >> 32


def element_distance(a: Any, b: Any, dtype: str) -> float:
    if dtype.startswith("complex"):
        (ar, ai), (br, bi) = split_complex(a, dtype), split_complex(b, dtype)
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


def differing_block_indices(a: Optional[bytes], b: Optional[bytes]) -> Optional[List[int]]:
    """Indices of the blocks whose digests differ; None when there are none to line up."""
    if a is None or b is None or len(a) != len(b):
        return None
    return [
        i
        for i in range(len(a) // DIGEST)
        if a[i * DIGEST : (i + 1) * DIGEST] != b[i * DIGEST : (i + 1) * DIGEST]
    ]
