"""Fingerprints: a 128-bit digest of an output's logical contents, plus a small sample.

The digest covers the canonical form of a value: its dtype name, its shape and its
elements as little-endian bytes in C order.  It is therefore independent of memory layout
(views, strides, non-contiguous tensors, byte order) and of the library that made it: a
numpy ``float32`` array and a torch ``float32`` tensor holding the same numbers have the
same fingerprint.  Bits are hashed as they are: ``-0.0`` differs from ``0.0`` and NaN
payloads are told apart, because a change there is a change of stream.  Only the bits that
hold a value are hashed: the padding of x87 long doubles (10 significant bytes stored in 12
or 16) holds whatever the allocator left there, and is zeroed.  A numpy masked array's mask
is part of its digest, and a dict's key types are (``{1: "a"}`` is not ``{"1": "a"}``).

Next to the digest a few elements are kept (the first eight and eight evenly spaced ones,
the last included) as canonical bytes, so the host can later say how far two streams
are apart in ULPs without storing whole arrays.

Worker side: the standard library, ``xxhash`` (xxh3-128), and numpy/torch only when the
value is one of theirs.  Python values are canonicalised without numpy, so the probes of
the ``random`` module run in an environment that has no numpy.
"""

from __future__ import annotations

import array
import functools
import json
import os
import struct
import sys
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import xxhash

#: Outputs larger than this many bytes are hashed as a list of the digests of pieces of
#: this size (see _digest).  Part of the fingerprint's definition: never change it.
CHUNK = 8 * 1024 * 1024
_POOL: Any = None

#: Every output of fixed-size elements is also digested in blocks of this many bytes (a
#: multiple of every item size, so blocks hold whole elements): comparing the block digests
#: of two streams says where they differ, and how much of them.
BLOCK = 64 * 1024

#: Bytes streamed into the running digest before their blocks are digested (from cache): small
#: enough to stay in a core's L2 between the two passes (1 MiB did not on a 1 MiB-L2 EPYC: 9.2 ms
#: against 8.0 ms for 200 MB), large enough that each update releases the GIL (over 64 KiB).
#: Not part of the fingerprint: streaming gives the digest of one call over the whole buffer.
SEGMENT = 256 * 1024

#: Number of leading elements and of evenly spaced elements kept in a sample.
SAMPLE_HEAD = 8
SAMPLE_SPREAD = 8

_TORCH_DTYPES = {
    "torch.float16": "float16",
    "torch.bfloat16": "bfloat16",
    "torch.float32": "float32",
    "torch.float64": "float64",
    "torch.complex64": "complex64",
    "torch.complex128": "complex128",
    "torch.bool": "bool",
    "torch.uint8": "uint8",
    "torch.int8": "int8",
    "torch.int16": "int16",
    "torch.int32": "int32",
    "torch.int64": "int64",
}

#: Item size in bytes of every fixed-size dtype name a fingerprint may carry.
ITEMSIZE = {
    "bool": 1,
    "uint8": 1,
    "int8": 1,
    "uint16": 2,
    "int16": 2,
    "float16": 2,
    "bfloat16": 2,
    "uint32": 4,
    "int32": 4,
    "float32": 4,
    "uint64": 8,
    "int64": 8,
    "float64": 8,
    "complex64": 8,
    "complex128": 16,
}


@dataclass(frozen=True)
class Canonical:
    """A value reduced to dtype name, shape and little-endian C-order bytes."""

    dtype: str
    shape: Tuple[int, ...]
    data: Any  # a bytes-like object (bytes, memoryview, contiguous uint8 array)
    itemsize: int  # 0 for variable-size encodings (str, json, big ints): no sample
    extra: str = ""  # more header: what the digest covers besides the data (a mask's digest)


@dataclass(frozen=True)
class Fingerprint:
    digest: str  # 32 hex digits
    dtype: str
    shape: Tuple[int, ...]
    sample: str  # hex of the sampled elements' canonical bytes
    sample_index: Tuple[int, ...]
    blocks: Optional[bytes] = None  # little-endian xxh3-64 of each BLOCK of the data, in order
    block_elements: Optional[int] = None  # elements per block (None: variable-size encoding)


@functools.lru_cache(maxsize=1024)
def sample_indices(n: int) -> Tuple[int, ...]:
    """The flat indices sampled from ``n`` elements; a function of ``n`` alone."""
    head = list(range(min(SAMPLE_HEAD, n)))
    if n <= SAMPLE_HEAD:
        return tuple(head)
    rest = n - SAMPLE_HEAD
    spread = {SAMPLE_HEAD + (k * (rest - 1)) // (SAMPLE_SPREAD - 1) for k in range(SAMPLE_SPREAD)}
    return tuple(head + sorted(spread))


def _from_numpy(a: Any) -> Canonical:
    np = sys.modules["numpy"]
    ma = sys.modules.get("numpy.ma")
    if ma is not None and isinstance(a, ma.MaskedArray):
        return _from_masked(a)
    a = np.asarray(a)
    if a.dtype.kind in "OUSV" or a.dtype.names is not None:
        return _from_python(a.tolist())
    if a.dtype.byteorder == ">" or (a.dtype.byteorder == "=" and sys.byteorder == "big"):
        a = a.astype(a.dtype.newbyteorder("<"))
    shape = tuple(int(s) for s in a.shape)
    data = np.ascontiguousarray(a).reshape(-1).view(np.uint8)
    if a.dtype.itemsize > 8 * (2 if a.dtype.kind == "c" else 1) and a.dtype.kind in "fc":
        data = _zero_padding(np, a.dtype, data)
    return Canonical(a.dtype.name, shape, data, a.dtype.itemsize)


#: Bytes of an x87 extended-precision value that hold it (sign, exponent, 64-bit significand).
X87_BYTES = 10


def _zero_padding(np: Any, dtype: Any, data: Any) -> Any:
    """``data`` (the uint8 view of an array of ``dtype``) with the padding of each x87 long
    double (or each half of a complex one) zeroed, in a copy; other wide floats (IEEE quad,
    whose 16 bytes are all significant) as they are."""
    part = dtype.itemsize // (2 if dtype.kind == "c" else 1)
    if np.finfo(dtype).nmant != 63 or part <= X87_BYTES:
        return data
    values = data.reshape(-1, part).copy()
    values[:, X87_BYTES:] = 0
    return values.reshape(-1)


def _from_masked(a: Any) -> Canonical:
    """A masked array: its data (every element, as the array holds it) and, in the header,
    the digest of its mask (``nomask`` and a mask of all False are the same mask)."""
    np = sys.modules["numpy"]
    data = _from_numpy(np.asarray(a.data))
    mask = np.ascontiguousarray(sys.modules["numpy.ma"].getmaskarray(a)).reshape(-1).view(np.uint8)
    return Canonical(
        data.dtype,
        data.shape,
        data.data,
        data.itemsize,
        extra=f"mask={xxhash.xxh3_128_hexdigest(mask)}|",
    )


def _from_torch(t: Any) -> Canonical:
    torch = sys.modules["torch"]
    t = t.detach()
    if t.device.type != "cpu":
        t = t.cpu()
    if t.is_conj():
        t = t.resolve_conj()
    if t.is_neg():
        t = t.resolve_neg()
    name = _TORCH_DTYPES.get(str(t.dtype))
    if name is None:
        raise TypeError(f"cannot fingerprint a tensor of dtype {t.dtype}")
    shape = tuple(int(s) for s in t.shape)
    flat = t.contiguous().reshape(-1)
    if name == "bfloat16":
        flat = flat.view(torch.int16)
    if "numpy" in sys.modules:
        data: Any = flat.numpy().view("uint8")
    else:  # clone: a contiguous slice still shares (and would hash) its whole storage
        data = bytes(flat.clone().untyped_storage())
    if sys.byteorder == "big":  # pragma: no cover - no big-endian machine to test on
        raise TypeError("fingerprints of torch tensors on big-endian machines are not supported")
    return Canonical(name, shape, data, ITEMSIZE[name])


def _pack(code: str, values: Sequence[Any]) -> bytes:
    arr = array.array(code, values)
    if sys.byteorder == "big":  # pragma: no cover
        arr.byteswap()
    return arr.tobytes()


def _from_python(value: Any) -> Canonical:
    """Python scalars and flat sequences of one scalar type as arrays; the rest as JSON."""
    seq = list(value) if isinstance(value, (list, tuple)) else None
    items = seq if seq is not None else [value]
    shape: Tuple[int, ...] = (len(items),) if seq is not None else ()
    if items and all(type(v) is bool for v in items):
        return Canonical("bool", shape, _pack("B", [int(v) for v in items]), 1)
    if items and all(type(v) is float for v in items):
        return Canonical("float64", shape, _pack("d", items), 8)
    if items and all(type(v) is int for v in items):
        if all(-(2**63) <= v < 2**63 for v in items):
            return Canonical("int64", shape, _pack("q", items), 8)
        return Canonical("pyint", shape, ",".join(str(v) for v in items).encode(), 0)
    if isinstance(value, str):
        return Canonical("str", (), value.encode("utf-8"), 0)
    if isinstance(value, (bytes, bytearray)):
        return Canonical("bytes", (len(value),), bytes(value), 1)
    text = json.dumps(_jsonable(value), sort_keys=True, separators=(",", ":"))
    return Canonical("json", (), text.encode("utf-8"), 0)


def _jsonable(value: Any) -> Any:
    """Nested containers of scalars, arrays and tensors as plain JSON, exactly."""
    if isinstance(value, dict):
        if all(map(_IS_STR, value)):
            return {str(k): _jsonable(v) for k, v in value.items()}
        return {
            KEYED: sorted(([_jsonable(k), _jsonable(v)] for k, v in value.items()), key=_json_text)
        }
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return {"f": struct.pack("<d", value).hex()}  # exact bits, NaN payloads included
    if isinstance(value, (bytes, bytearray)):
        return {"b": bytes(value).hex()}
    if value is None or isinstance(value, (bool, int, str)):
        return value
    c = canonical(value)
    spelled = {"dtype": c.dtype, "shape": list(c.shape), "data": bytes(c.data).hex()}
    return {**spelled, "extra": c.extra} if c.extra else spelled


_IS_STR = str.__instancecheck__  # isinstance(k, str), at half the cost over a dict's keys

#: The key under which a dict with a key that is not a string lists its [key, value] pairs,
#: sorted by the key's JSON: its keys keep their types.  (NUL-prefixed: no probe's own key.)
KEYED = "\x00dict"


def _json_text(pair: List[Any]) -> str:
    return json.dumps(pair[0], sort_keys=True, separators=(",", ":"))


def canonical(value: Any) -> Canonical:
    """Reduce any probe output to its canonical form."""
    module = type(value).__module__.split(".")[0]
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(value, torch.Tensor):  # parameters and buffers too
        return _from_torch(value)
    if module == "numpy":
        return _from_numpy(value)
    return _from_python(value)


def _blocks_into(running: Any, view: Any) -> bytes:
    """Stream ``view`` into the ``running`` xxh3-128 and return the digests of its blocks.

    Memory is read once: each SEGMENT goes into the running digest (a long call, the GIL
    released) and its blocks are then digested from cache.  Streaming gives the same digest
    as one call over the whole buffer, so the fingerprint does not depend on this.
    """
    block = xxhash.xxh3_64_intdigest
    blocks = array.array("Q")
    for start in range(0, len(view), SEGMENT):
        segment = view[start : start + SEGMENT]
        running.update(segment)
        blocks.extend([block(segment[i : i + BLOCK]) for i in range(0, len(segment), BLOCK)])
    if sys.byteorder == "big":  # pragma: no cover
        blocks.byteswap()
    return blocks.tobytes()


def _piece(view: Any) -> Tuple[bytes, bytes]:
    """The xxh3-128 digest of one CHUNK-sized piece and its block digests."""
    running = xxhash.xxh3_128()
    blocks = _blocks_into(running, view)
    return running.digest(), blocks


def _pieces(view: Any) -> List[Tuple[bytes, bytes]]:
    """:func:`_piece` of each CHUNK-sized piece, in parallel (xxhash releases the GIL)."""
    global _POOL
    pieces = [view[i : i + CHUNK] for i in range(0, len(view), CHUNK)]
    if _POOL is None:
        from concurrent.futures import ThreadPoolExecutor

        _POOL = ThreadPoolExecutor(
            max_workers=max(1, min(4, os.cpu_count() or 1)), thread_name_prefix="fingerprint"
        )
    return list(_POOL.map(_piece, pieces))


def _header(c: Canonical) -> bytes:
    """What the digest covers before the data: dtype, shape and anything extra."""
    return f"{c.dtype}|{','.join(map(str, c.shape))}|{c.extra}".encode()


def _digest(c: Canonical) -> Tuple[str, Optional[bytes]]:
    """xxh3-128 of the header, then of the data itself (up to CHUNK bytes) or of the digests
    of its CHUNK-sized pieces; and, for fixed-size elements, the block digests.

    The pieces have a fixed size, so the digest does not depend on how many threads hashed
    them; hashing them in parallel keeps large outputs cheap (one sequential pass is bound
    by one core's memory bandwidth).
    """
    h = xxhash.xxh3_128()
    h.update(_header(c))
    if not c.itemsize:  # variable-size encodings have no element grid to place blocks on
        h.update(c.data)
        return h.hexdigest(), None
    view = (
        memoryview(c.data).cast("B")
        if isinstance(c.data, (bytes, bytearray, memoryview))
        else c.data
    )
    if len(view) <= CHUNK:
        blocks = _blocks_into(h, view)
        return h.hexdigest(), blocks
    pieces = _pieces(view)
    for digest, _ in pieces:
        h.update(digest)
    return h.hexdigest(), b"".join(blocks for _, blocks in pieces)


def _digest_only(c: Canonical) -> str:
    """The digest :func:`_digest` gives ``c``, without its block digests (less work)."""
    if not c.itemsize or len(c.data) > CHUNK:
        return _digest(c)[0]
    h = xxhash.xxh3_128()
    h.update(_header(c))
    h.update(c.data)
    return h.hexdigest()


def fingerprint(value: Any, blocks: bool = True) -> Fingerprint:
    """The digest, sample and block digests of one probe output.

    ``blocks=False`` leaves the block digests out (``blocks`` and ``block_elements`` None)
    and gives the same digest and sample: what a trace needs for each of its thousands
    of op outputs.
    """
    c = canonical(value)
    if c.itemsize:
        n = len(c.data) // c.itemsize
        index = sample_indices(n)
        sample = _sample_bytes(c, index, n).hex()
    else:
        index, sample = (), ""
    if not blocks:
        return Fingerprint(_digest_only(c), c.dtype, c.shape, sample, index)
    digest, digests = _digest(c)
    return Fingerprint(
        digest,
        c.dtype,
        c.shape,
        sample,
        index,
        digests,
        BLOCK // c.itemsize if c.itemsize else None,
    )


def _sample_bytes(c: Canonical, index: Tuple[int, ...], n: int) -> bytes:
    if n <= SAMPLE_HEAD + SAMPLE_SPREAD:  # the sample is the whole output
        return bytes(c.data)
    if hasattr(c.data, "reshape"):  # a numpy byte view: one gather
        return c.data[: n * c.itemsize].reshape(n, c.itemsize)[list(index)].tobytes()
    size = c.itemsize
    return b"".join(bytes(c.data[i * size : (i + 1) * size]) for i in index)


def state_fingerprint(state: Any) -> Optional[str]:
    """Digest of a generator's state (a dict, tuple, bytes or tensor); None for no state."""
    if state is None:
        return None
    return _digest(
        _from_python(state) if isinstance(state, (dict, list, tuple)) else canonical(state)
    )[0]


def decode_sample(sample_hex: str, dtype: str) -> List[Any]:
    """The sampled elements as raw unsigned integers of the dtype's width (for ULP maths)."""
    size = ITEMSIZE.get(dtype)
    if not size or not sample_hex:
        return []
    raw = bytes.fromhex(sample_hex)
    code = {1: "B", 2: "H", 4: "I", 8: "Q", 16: "QQ"}[size]
    if size == 16:  # complex128: two float64 halves, kept as a pair
        return [struct.unpack_from("<QQ", raw, i) for i in range(0, len(raw), 16)]
    return [struct.unpack_from("<" + code, raw, i)[0] for i in range(0, len(raw), size)]
