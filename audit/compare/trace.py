"""The first op where two traces of one case part, and whether it made the difference itself.

Two runs of a trace probe (``kind="trace"``) that end with different fingerprints recorded
every aten op on the way (see :mod:`audit.worker.trace` for the record format).  Walking
both traces in order, the first op whose output differs is where the runs part.  Its
inputs say whether the op *made* the difference or *inherited* it:

* an input ``"#i.j"`` is output ``j`` of an earlier op ``i``, and every earlier op agreed,
  so such inputs are identical (compared by that output's fingerprint all the same);
* an input made outside the trace is listed by its fingerprint, compared as it is.

Inputs identical and the output different: this op computes differently on the other
machine, version or setting.  Inputs different: the difference came from outside the
trace (data, a model loaded before it).  When the op sequences themselves part (another
kernel, an op more or less) the divergence is ``structural``.

The kind and ULPs come from the outputs' samples (:mod:`audit.compare.ulp`): drift only
with ULP evidence within the drift threshold; samples that agree while fingerprints differ
mean the difference lies outside the sampled elements (``sparse``, no ULP).

Pure: two traces in (lists of op dicts, or the numpy arrays of dicts pandas and pyarrow
give), one named record out.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from audit.compare import ulp
from audit.compare.model import Difference
from audit.worker import distance

_SEVERITY = list(Difference)  # most severe first


@dataclass(frozen=True)
class TraceDivergence:
    """Where two traces part (the JSON ``first_divergence`` of a finding)."""

    index: int  # the op's position in the trace
    op: str  # aten.native_layer_norm.default
    module: Optional[str]  # module path it ran in ("" the root module), None where unknown
    inputs_identical: bool  # True: this op itself computes differently
    difference: Difference
    max_ulp: Optional[float]  # largest sampled ULP distance, where measurable
    ops_differing: int  # ops after this one whose outputs differ too
    ops: int  # ops in the longer trace

    def as_dict(self) -> Dict[str, Any]:
        """The JSON form: ``difference`` as its string value."""
        return {**dataclasses.asdict(self), "difference": self.difference.value}


def first_divergence(
    a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]]
) -> Optional[TraceDivergence]:
    """The first op whose output differs between traces ``a`` and ``b``; None if none does."""
    ops_a, ops_b = _ops(a), _ops(b)
    common = min(len(ops_a), len(ops_b))
    differing = [i for i in range(common) if _differs(ops_a[i], ops_b[i])]
    differing += list(range(common, max(len(ops_a), len(ops_b))))  # ops only one trace has
    if not differing:
        return None
    first = differing[0]
    x = ops_a[first] if first < len(ops_a) else None
    y = ops_b[first] if first < len(ops_b) else None
    here = x if x is not None else y
    assert here is not None
    if x is None or y is None:
        kind, max_ulp, same_inputs = Difference.STRUCTURAL, None, False
    else:
        kind, max_ulp = _classify(x, y)
        same_inputs = _inputs(x, ops_a) == _inputs(y, ops_b)
    return TraceDivergence(
        int(here.get("index", first)),
        str(here.get("op")),
        here.get("module"),
        same_inputs,
        kind,
        max_ulp,
        len(differing) - 1,
        max(len(ops_a), len(ops_b)),
    )


def one_line(d: TraceDivergence) -> str:
    """``first divergence: op 10 aten.native_layer_norm.default in 1 (inputs identical),
    drift 2 ULP``, then how many later ops differ."""
    where = "" if d.module is None else f" in {d.module or '(root)'}"
    inputs = "inputs identical" if d.inputs_identical else "inputs differ"
    if not d.inputs_identical and d.difference is not Difference.STRUCTURAL:
        inputs += ": inherited"  # its values follow from its inputs' (another op is another matter)
    later = (
        f"; {d.ops_differing} of {d.ops - d.index - 1} later ops differ"
        if d.ops > d.index + 1
        else ""
    )
    return f"first divergence: op {d.index} {d.op}{where} ({inputs}), {_kind_text(d)}{later}"


def _kind_text(d: TraceDivergence) -> str:
    ulps = "" if d.max_ulp is None else f"{d.max_ulp:g} ULP"
    if d.difference is Difference.NUMERICAL_DRIFT:
        return f"drift {ulps}"
    if d.difference is Difference.STREAM_CHANGE:
        return "stream change" + (f", {ulps}" if ulps and d.max_ulp != distance.INFINITE else "")
    if d.difference is Difference.SPARSE:
        return "differs outside the sampled elements"
    return "structural"


# --------------------------------------------------------------------------- helpers


def _ops(trace: Any) -> List[Mapping[str, Any]]:
    """A trace as a list of op dicts (pandas and pyarrow give numpy arrays; None is empty)."""
    return [] if trace is None else list(trace)


def _outputs(op: Mapping[str, Any]) -> List[Mapping[str, Any]]:
    outputs = op.get("outputs")
    return [] if outputs is None else list(outputs)


def _output_key(out: Mapping[str, Any]) -> Tuple[Any, Any, Any]:
    return out.get("fingerprint"), out.get("dtype"), out.get("shape")


def _differs(x: Mapping[str, Any], y: Mapping[str, Any]) -> bool:
    """Whether two ops at one position differ: another op, or another output."""
    if x.get("op") != y.get("op"):
        return True
    return [_output_key(o) for o in _outputs(x)] != [_output_key(o) for o in _outputs(y)]


def _inputs(op: Mapping[str, Any], trace: Sequence[Mapping[str, Any]]) -> List[Any]:
    """An op's inputs as contents: "#i.j" becomes output j's fingerprint (the reference
    itself where that output has none), an outside tensor stays its fingerprint."""
    inputs = op.get("inputs")
    return [_resolve(str(source), trace) for source in ([] if inputs is None else list(inputs))]


def _resolve(source: str, trace: Sequence[Mapping[str, Any]]) -> Any:
    if not source.startswith("#"):
        return source
    try:
        i, j = (int(part) for part in source[1:].split("."))
        out = _outputs(trace[i])[j]
    except (ValueError, IndexError):
        return source
    return (out.get("fingerprint") or source, out.get("dtype"), out.get("shape"))


def _classify(x: Mapping[str, Any], y: Mapping[str, Any]) -> Tuple[Difference, Optional[float]]:
    """The most severe difference among the op's outputs, and the largest ULP measured."""
    outs_x, outs_y = _outputs(x), _outputs(y)
    if x.get("op") != y.get("op") or len(outs_x) != len(outs_y):
        return Difference.STRUCTURAL, None
    kinds: List[Difference] = []
    ulps: List[float] = []
    for ox, oy in zip(outs_x, outs_y):
        if _output_key(ox) == _output_key(oy):
            continue
        kind, distance = _classify_output(ox, oy)
        kinds.append(kind)
        if distance is not None:
            ulps.append(distance)
    kind = min(kinds, key=_SEVERITY.index) if kinds else Difference.STRUCTURAL
    return kind, (max(ulps) if ulps else None)


def _classify_output(
    ox: Mapping[str, Any], oy: Mapping[str, Any]
) -> Tuple[Difference, Optional[float]]:
    if ox.get("dtype") != oy.get("dtype") or ox.get("shape") != oy.get("shape"):
        return Difference.STRUCTURAL, None
    dtype = str(ox.get("dtype"))
    measured = distance.compare_samples(
        str(ox.get("sample") or ""), str(oy.get("sample") or ""), dtype
    )
    if measured is None:  # integers, booleans, no sample (uninitialised on one side)
        return Difference.STREAM_CHANGE, None
    max_ulp, fraction = measured
    if max_ulp == 0:  # the samples agree (or differ only at zero distance): no drift to measure
        return Difference.SPARSE, None
    if ulp.is_drift(max_ulp, dtype):
        return Difference.NUMERICAL_DRIFT, max_ulp
    return Difference.STREAM_CHANGE, max_ulp
