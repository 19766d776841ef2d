"""ULP arithmetic across float dtypes, and the drift/change threshold."""

from __future__ import annotations

import struct

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from audit.compare import ulp
from audit.worker import distance

BITS = {"float16": ("<e", "<H"), "float32": ("<f", "<I"), "float64": ("<d", "<Q")}


def bits(value: float, dtype: str) -> int:
    fmt, ifmt = BITS[dtype]
    return struct.unpack(ifmt, struct.pack(fmt, value))[0]


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64"])
def test_adjacent_floats_are_one_ulp_apart(dtype):
    x = np.array([1.0, -3.5, 1e-3, 0.0], dtype=dtype)
    y = np.nextafter(x, np.array(np.inf, dtype=dtype))
    for a, b in zip(x, y):
        assert distance.ulp_distance(bits(float(a), dtype), bits(float(b), dtype), dtype) == 1


@given(st.lists(st.floats(allow_nan=False, width=32), min_size=2, max_size=20))
def test_ordering_is_monotone_in_value(values):
    keyed = sorted(values, key=lambda v: distance.ordered(bits(v, "float32"), "float32"))
    assert keyed == sorted(values, key=float) or all(a == b for a, b in zip(keyed, sorted(values)))


def test_signed_zero_is_zero_ulps_but_differs():
    pos, neg = bits(0.0, "float32"), bits(-0.0, "float32")
    assert distance.ulp_distance(pos, neg, "float32") == 0
    sample_a = struct.pack("<f", 0.0).hex()
    sample_b = struct.pack("<f", -0.0).hex()
    assert distance.compare_samples(sample_a, sample_b, "float32") == (0.0, 1.0)


def test_distance_across_zero_counts_both_sides():
    tiny = bits(np.nextafter(np.float32(0), np.float32(1)).item(), "float32")
    assert distance.ulp_distance(tiny, tiny | 0x80000000, "float32") == 2


def test_nan_conventions():
    nan, other_nan = 0x7FC00000, 0xFFC00001
    assert distance.ulp_distance(nan, other_nan, "float32") == 0
    assert distance.ulp_distance(nan, bits(1.0, "float32"), "float32") == float("inf")


def test_bfloat16_is_the_top_half_of_float32():
    one = bits(1.0, "float32") >> 16
    assert distance.ulp_distance(one, one + 3, "bfloat16") == 3
    assert distance.ordered(0x7FC1, "bfloat16") is None  # NaN
    assert distance.ordered(0x7F80, "bfloat16") is not None  # infinity


def test_complex_takes_the_worse_part():
    a = np.array([1 + 2j], dtype=np.complex64)
    b = a.copy()
    b.imag = np.nextafter(b.imag, np.float32(10)) + 0
    b.imag = np.nextafter(b.imag, np.float32(10))
    assert distance.compare_samples(a.tobytes().hex(), b.tobytes().hex(), "complex64") == (2.0, 1.0)
    c = np.array([1 + 2j], dtype=np.complex128)
    d = c.copy()
    d.real = np.nextafter(d.real, 10)
    assert distance.compare_samples(c.tobytes().hex(), d.tobytes().hex(), "complex128") == (1.0, 1.0)


def test_drift_threshold_separates_unrelated_values():
    rng = np.random.default_rng(0)
    base = rng.standard_normal(16).astype("<f4")
    drifted = (base.view("<u4") + 3).view("<f4")
    other = rng.standard_normal(16).astype("<f4")
    near = distance.compare_samples(base.tobytes().hex(), drifted.tobytes().hex(), "float32")
    far = distance.compare_samples(base.tobytes().hex(), other.tobytes().hex(), "float32")
    assert near == (3.0, 1.0) and ulp.is_drift(near[0], "float32")
    assert far is not None and not ulp.is_drift(far[0], "float32")


def test_integers_and_mismatched_samples_are_not_measured():
    assert distance.compare_samples("01" * 8, "02" * 8, "int64") is None
    assert distance.compare_samples("00" * 8, "00" * 4, "float32") is None
    assert ulp.DRIFT_MAX_ULP == {"float16": 8, "bfloat16": 2, "float32": 2**16, "float64": 2**45,
                                 "complex64": 2**16, "complex128": 2**45}
