"""The recorder behind trace probes (``@probe(..., kind="trace")``): every aten op, in order.

The worker runs a trace probe's body under :class:`Recorder`, a ``TorchDispatchMode``
(torch 2.0+).  A dispatch mode sees the ops below autograd, so the forward pass, the
backward pass and the optimizer step are all recorded, on CPU and CUDA alike.  Each op
with tensor outputs becomes one record (the trace record format, also the run file's
``trace`` column)::

    {"index": 12,                       # position among recorded ops
     "op": "aten.addmm.default",        # the op as torch prints it
     "module": "encoder.linear1",       # module path (named_modules) it ran in, or None
     "inputs": ["#3.0", "9c1f..."],     # each tensor input: "#i.j" = output j of op i,
                                        #   else the fingerprint of a tensor made outside
     "outputs": [{"fingerprint": "...", "dtype": "float32", "shape": "[4, 8]",
                  "sample": "hex of the sampled elements"}]}

Outputs are the op's returned tensors, then the arguments it writes that it does not
return (``_foreach_add_`` returns nothing; batch norm writes its running statistics).
An output of ``empty``-like ops is uninitialised memory: its record has no fingerprint and
no sample (nor has a view of such memory, an RNN kernel's workspace, or a tensor of a dtype
fingerprints do not cover).  The fingerprint is the canonical one of
:mod:`audit.worker.fingerprint`.

A tensor's provenance is kept by object identity and in-place version (``_version``), so
an in-place op makes its output the new source of the tensor; a tensor the trace did not
make is fingerprinted once per version.  The old contents of an argument an op overwrites
whole (``out=``, ``fill_``, ``copy_``'s destination, the random fills) are not an input.

Modules are named when the probe hands its root module to :func:`audit.probe_api.traced`:
forward hooks then say which module each forward op ran in (backward and optimizer ops
run in no module: None).  :func:`audit.probe_api.untraced` pauses the recorder for setup.
Worker side: standard library, torch, xxhash; imported only when a trace probe runs.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time
import weakref
from dataclasses import dataclass
from typing import Any, Dict, Iterable, List, Optional, Sequence, Tuple

import torch
import xxhash
from torch import Tensor
from torch.utils._python_dispatch import TorchDispatchMode

from audit import registry
from audit.worker.execution import Execution, call_and_fingerprint
from audit.worker.fingerprint import CHUNK, SAMPLE_HEAD, SAMPLE_SPREAD, fingerprint, sample_indices

#: Ops whose outputs are uninitialised memory: recorded without a fingerprint.
UNINITIALISED = frozenset(
    {
        "empty",
        "empty_like",
        "empty_strided",
        "new_empty",
        "new_empty_strided",
        "empty_permuted",
        "empty_quantized",
    }
)

#: Outputs (by position) that are a kernel's scratch space, partly uninitialised: the RNN
#: workspaces that the backward pass reads.  Recorded like uninitialised outputs.
SCRATCH = {
    "mkldnn_rnn_layer": frozenset({3}),
    "_cudnn_rnn": frozenset({3}),
    "miopen_rnn": frozenset({3}),
}

#: In-place ops that overwrite their ``self`` whole: its old contents are not an input.
OVERWRITES = frozenset(
    {
        "fill_",
        "zero_",
        "uniform_",
        "normal_",
        "random_",
        "bernoulli_",
        "exponential_",
        "geometric_",
        "log_normal_",
        "cauchy_",
        "copy_",
        "set_",
    }
)

#: Ops whose output holds the same elements as their input: its record is the input's.
SAME_CONTENT = frozenset({"detach", "alias", "clone", "lift_fresh", "lift_fresh_copy"})

#: Uninitialised outputs whose storage the recorder remembers (see Recorder._blank_alias).
BLANK_REMEMBERED = 256

Op = Dict[str, Any]  # one trace record, as above


@dataclass(frozen=True)
class OpInfo:
    """What the recorder needs to know about an op overload, read once from its schema."""

    name: str  # aten.addmm.default
    uninitialised: bool  # its outputs are uninitialised memory
    view: bool  # its outputs alias an input (no data of their own)
    written: Tuple[Tuple[int, str], ...]  # (position, name) of the arguments it writes
    # those written arguments whose old contents it never reads
    overwritten: Tuple[Tuple[int, str], ...]
    same_content: bool  # its output holds its first input's elements (detach, clone)
    scratch: frozenset  # positions of outputs that are scratch space (see SCRATCH)


@functools.cache
def op_info(func: Any) -> OpInfo:
    """An op overload's :class:`OpInfo` (schemas of torch 2.0 and later)."""
    packet = func.overloadpacket.__name__
    schema = func._schema
    written, overwritten = [], []
    for position, arg in enumerate(schema.arguments):
        alias = arg.alias_info
        if alias is None or not alias.is_write:
            continue
        written.append((position, arg.name))
        if (
            getattr(arg, "is_out", False)
            or arg.name == "out"
            or (arg.name == "self" and packet in OVERWRITES)
        ):
            overwritten.append((position, arg.name))
    view = any(r.alias_info is not None and not r.alias_info.is_write for r in schema.returns)
    return OpInfo(
        str(func),
        packet in UNINITIALISED,
        view,
        tuple(written),
        tuple(overwritten),
        packet in SAME_CONTENT,
        SCRATCH.get(packet, frozenset()),
    )


class Known:
    """What the trace knows of one tensor object at one version: where it came from."""

    __slots__ = ("ref", "version", "source", "uninitialised", "record")

    def __init__(
        self,
        ref: Any,
        version: int,
        source: str,
        uninitialised: bool = False,
        record: Optional[Dict[str, Any]] = None,
    ) -> None:
        self.ref = ref  # weakref to the tensor (ids are reused once a tensor dies)
        self.version = version
        self.source = source  # "#i.j" or the fingerprint of a tensor made outside the trace
        self.uninitialised = uninitialised
        self.record = record  # its output record, when an op of the trace made it


def _version(t: Any) -> int:
    try:
        return int(t._version)
    except RuntimeError:  # inference tensors keep no version counter
        return -1


def _tensors(values: Iterable[Any]) -> List[Any]:
    """The tensors among an op's arguments or results (flat, or in one level of lists)."""
    found = []
    for v in values:
        if isinstance(v, Tensor):
            found.append(v)
        elif isinstance(v, (list, tuple)):
            found.extend(x for x in v if isinstance(x, Tensor))
    return found


#: torch dtype -> the canonical dtype name, for the dtypes the fast path below covers.
_NAMES = {
    getattr(torch, name): name
    for name in (
        "float16",
        "bfloat16",
        "float32",
        "float64",
        "bool",
        "uint8",
        "int8",
        "int16",
        "int32",
        "int64",
    )
}


class _Form:
    """What every output of one dtype, shape and layout shares: names, header, sample indices."""

    __slots__ = ("name", "shape", "header", "index", "quick")

    def __init__(self, t: Any) -> None:
        dims = tuple(int(s) for s in t.shape)
        self.name = _NAMES.get(t.dtype)
        self.shape = str(list(dims))
        self.header = f"{self.name}|{','.join(map(str, dims))}|".encode()
        n = t.numel()
        self.index = None if n <= SAMPLE_HEAD + SAMPLE_SPREAD else _sample_at(n)
        self.quick = (
            self.name is not None
            and t.layout == torch.strided
            and "numpy" in sys.modules
            and n * t.element_size() <= CHUNK
        )


_FORMS: Dict[Tuple[Any, Any, Any], _Form] = {}


def _sample_at(n: int) -> Any:
    import numpy as np

    return np.array(sample_indices(n), dtype=np.int64)


def output_record(t: Any, uninitialised: bool = False) -> Dict[str, Any]:
    """The record of one op output: canonical fingerprint and sample, or neither.

    A trace fingerprints every op output, so the common case (a strided CPU or CUDA tensor
    of a real dtype, at most CHUNK bytes, numpy present) takes a short path that gives the
    digest and sample :func:`audit.worker.fingerprint.fingerprint` gives (a test holds
    them equal); anything else goes through that function.
    """
    key = (t.dtype, t.shape, t.layout)
    form = _FORMS.get(key)
    if form is None:
        if len(_FORMS) > 4096:
            _FORMS.clear()
        form = _FORMS[key] = _Form(t)
    if uninitialised:
        return {
            "fingerprint": None,
            "dtype": form.name or _dtype_text(t),
            "shape": form.shape,
            "sample": None,
        }
    if form.quick:
        if not t.is_cpu:
            t = t.cpu()
        if t.requires_grad:
            t = t.detach()
        if form.name == "bfloat16":
            t = t.view(torch.int16)
        if not t.is_contiguous():
            t = t.contiguous()
        flat = t.numpy().reshape(-1)
        h = xxhash.xxh3_128(form.header)
        h.update(flat)
        sample = flat if form.index is None else flat[form.index]
        return {
            "fingerprint": h.hexdigest(),
            "dtype": form.name,
            "shape": form.shape,
            "sample": sample.tobytes().hex(),
        }
    try:
        fp = fingerprint(t, blocks=False)
        return {
            "fingerprint": fp.digest,
            "dtype": fp.dtype,
            "shape": form.shape,
            "sample": fp.sample,
        }
    except (TypeError, RuntimeError, ValueError):  # a dtype or layout fingerprints do not cover
        return {"fingerprint": None, "dtype": _dtype_text(t), "shape": form.shape, "sample": None}


def _dtype_text(t: Any) -> str:
    return str(t.dtype).replace("torch.", "")


class Recorder(TorchDispatchMode):  # type: ignore[misc]
    """Records every op it sees (see the module doc).  ``with Recorder() as r:``, then ``r.ops``."""

    @classmethod
    def _should_skip_dynamo(cls) -> bool:
        """No torch.compile runs inside the recorder: without this, newer torch wraps
        ``__torch_dispatch__`` in a Dynamo guard that imports Dynamo (a second) and costs
        microseconds on every op."""
        return False

    def __init__(self) -> None:
        super().__init__()
        self.ops: List[Op] = []
        self.paused = False
        self._known: Dict[int, Known] = {}
        self._modules: List[str] = []  # stack of the modules whose forward is running
        self._hooks: List[Any] = []
        self._unsettled: List[Known] = []  # the last op's outputs (see _settle)
        # storage address -> (output, storage)
        self._blank: Dict[Optional[int], Tuple[Known, Any]] = {}

    def __torch_dispatch__(
        self,
        func: Any,
        types: Any,
        args: Sequence[Any] = (),
        kwargs: Optional[Dict[str, Any]] = None,
    ) -> Any:
        kwargs = kwargs or {}
        if self._unsettled:
            self._settle()
        if self.paused:
            return _call(func, args, kwargs)
        info = op_info(func)
        inputs = _tensors((*args, *kwargs.values()))
        if info.overwritten:
            skip = {id(t) for t in _arguments(info.overwritten, args, kwargs)}
            inputs = [t for t in inputs if id(t) not in skip]
        known = [self._lookup(t) for t in inputs]
        out = _call(func, args, kwargs)
        self._record(info, args, kwargs, out, known)
        return out

    def _settle(self) -> None:
        """Give the last op's written outputs their version, now that it is final.

        Autograd's in-place bookkeeping bumps a written tensor's version *after* this mode
        has returned, so the version an output keeps is read when the next op starts.
        """
        for known in self._unsettled:
            t = known.ref()
            if t is not None:
                known.version = _version(t)
        self._unsettled.clear()

    def _lookup(self, t: Any) -> Known:
        """Where an input came from; a tensor made outside the trace is fingerprinted once per
        version."""
        known = self._known.get(id(t))
        version = _version(t)
        if known is None or known.ref() is not t or known.version != version:
            known = self._blank_alias(t, version) or Known(
                weakref.ref(t), version, output_record(t)["fingerprint"] or "?"
            )
            self._known[id(t)] = known
        return known

    def _blank_alias(self, t: Any, version: int) -> Optional[Known]:
        """A tensor the trace did not make that aliases uninitialised memory it did make,
        unwritten since: ``nn.Parameter(torch.empty(...))`` wraps its tensor without an op
        (and the two share a version counter)."""
        storage = _storage(t)
        remembered = self._blank.get(storage)
        if remembered is None or version != remembered[0].version:
            return None
        return Known(weakref.ref(t), version, remembered[0].source, True, remembered[0].record)

    def _record(
        self,
        info: OpInfo,
        args: Sequence[Any],
        kwargs: Dict[str, Any],
        out: Any,
        known: List[Known],
    ) -> None:
        outputs = (
            [out]
            if isinstance(out, Tensor)
            else _tensors(out if isinstance(out, (list, tuple)) else ())
        )
        written = set()
        if info.written:  # what it writes and does not return is an output too
            returned = {id(t) for t in outputs}
            writes = _arguments(info.written, args, kwargs)
            written = {id(t) for t in writes}
            outputs += [t for t in writes if id(t) not in returned]
        if not outputs:
            return
        index = len(self.ops)
        uninitialised = info.uninitialised or (info.view and any(k.uninitialised for k in known))
        same = known[0].record if info.same_content and len(outputs) == 1 and known else None
        records = []
        for j, t in enumerate(outputs):
            blank = uninitialised or j in info.scratch
            record = same if same is not None and not blank else output_record(t, blank)
            records.append(record)
            entry = Known(weakref.ref(t), _version(t), f"#{index}.{j}", blank, record)
            self._known[id(t)] = entry
            if id(t) in written:  # its version moves once this mode has returned: see _settle
                self._unsettled.append(entry)
            if blank:
                self._remember_blank(t, entry)
        self.ops.append(
            {
                "index": index,
                "op": info.name,
                "module": self._modules[-1] if self._modules else None,
                "inputs": [k.source for k in known],
                "outputs": records,
            }
        )

    def _remember_blank(self, t: Any, entry: Known) -> None:
        """Keep the storage of an uninitialised output (alive, so its address is not reused
        by other memory while it is remembered), for :meth:`_blank_alias`; the latest few."""
        try:
            storage = t.untyped_storage()
        except (AttributeError, RuntimeError, NotImplementedError):
            return
        key = _storage(t)
        if key is not None:
            self._blank[key] = (entry, storage)
            while len(self._blank) > BLANK_REMEMBERED:
                self._blank.pop(next(iter(self._blank)))

    def name_modules(self, root: Any, prefix: str) -> None:
        """Hook every module under ``root`` so ops know the module path they ran in."""
        for name, module in root.named_modules(prefix=prefix):
            self._hooks.append(module.register_forward_pre_hook(self._enter(name)))
            self._hooks.append(module.register_forward_hook(self._leave))

    def _enter(self, name: str) -> Any:
        def hook(module: Any, args: Any) -> None:
            self._modules.append(name)

        return hook

    def _leave(self, module: Any, args: Any, output: Any) -> None:
        if self._modules:
            self._modules.pop()

    def __enter__(self) -> Any:
        _ACTIVE.append(self)
        return super().__enter__()

    def __exit__(self, *exc: Any) -> None:
        try:
            super().__exit__(*exc)
        finally:
            _ACTIVE.remove(self)
            for handle in self._hooks:
                handle.remove()
            self._hooks.clear()
            self._modules.clear()
            self._known.clear()
            self._unsettled.clear()
            self._blank.clear()


_ACTIVE: List[Recorder] = []  # the recorders entered, innermost last


def _storage(t: Any) -> Optional[int]:
    """Where a tensor's memory starts (None: no storage to speak of)."""
    try:
        return int(t.untyped_storage().data_ptr()) or None
    except (AttributeError, RuntimeError, NotImplementedError):
        return None


def _call(func: Any, args: Sequence[Any], kwargs: Dict[str, Any]) -> Any:
    """``func(*args, **kwargs)``, and torch 2.0's ``x ^ 5`` too: there a Python number reaches
    ``bitwise_xor.Tensor`` unwrapped, and only the op's ``Scalar`` overload takes it back."""
    try:
        return func(*args, **kwargs)
    except RuntimeError:
        scalar = _scalar_overload(func, args)
        if scalar is None:
            raise
        return scalar(*args, **kwargs)


def _scalar_overload(func: Any, args: Sequence[Any]) -> Any:
    if (
        len(args) < 2
        or isinstance(args[1], Tensor)
        or not isinstance(args[1], (bool, int, float, complex))
    ):
        return None
    name = {"Tensor": "Scalar", "Tensor_Tensor": "Tensor_Scalar"}.get(func._overloadname)
    return getattr(func.overloadpacket, name, None) if name else None


def _arguments(
    which: Sequence[Tuple[int, str]], args: Sequence[Any], kwargs: Dict[str, Any]
) -> List[Any]:
    """The tensors among the arguments at (position, name) ``which``."""
    return _tensors([args[pos] if pos < len(args) else kwargs.get(name) for pos, name in which])


def active() -> Optional[Recorder]:
    """The recorder of the trace probe running now (:func:`audit.probe_api.traced` asks)."""
    return _ACTIVE[-1] if _ACTIVE else None


def trace_digest(output_digest: str, ops: Sequence[Op]) -> str:
    """The case's fingerprint: the probe output's digest and every op record, so two runs
    whose traces differ anywhere (an op's output, an op more or less) never match."""
    h = xxhash.xxh3_128()
    h.update(f"trace|{output_digest}|".encode())
    for op in ops:
        h.update(registry.canonical_json(op).encode())
        h.update(b"\n")
    return h.hexdigest()


def execute_trace(case: registry.Case) -> Execution:
    """One execution of a trace probe: the body under a recorder, the output fingerprinted.

    The case's fingerprint is :func:`trace_digest` (the output's blocks are left out: the
    trace, not the blocks, says where two runs part); the ops go in the ``trace`` column.
    """
    recorder = Recorder()
    run = call_and_fingerprint(case, blocks=False, around=recorder)
    t0 = time.perf_counter()
    digest = trace_digest(run.fingerprint.digest, recorder.ops)
    return dataclasses.replace(
        run,
        fingerprint=dataclasses.replace(run.fingerprint, digest=digest),
        fingerprint_s=run.fingerprint_s + time.perf_counter() - t0,
        fields={"trace": recorder.ops},
    )
