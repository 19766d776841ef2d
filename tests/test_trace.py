"""Trace probes: the recorder (audit/worker/trace.py), the first divergence
(audit/compare/trace.py), the stored column, and the model traces of the catalogue."""

from __future__ import annotations

import math
from typing import Any, Dict, List

import pandas as pd
import pytest

torch = pytest.importorskip("torch")

import audit.probes  # noqa: E402,F401  (the catalogue)
from audit import registry  # noqa: E402
from audit.compare.model import Difference  # noqa: E402
from audit.compare.trace import TraceDivergence, first_divergence, one_line  # noqa: E402
from audit.probe_api import probe, traced, untraced  # noqa: E402
from audit.store.runfile import write_run  # noqa: E402
from audit.worker.execute import run_case  # noqa: E402
from audit.worker.fingerprint import fingerprint  # noqa: E402
from audit.worker.records import Run  # noqa: E402
from audit.worker.trace import Recorder, output_record  # noqa: E402


def _train_step(width: int = 16) -> Any:
    torch.manual_seed(0)
    model = traced(torch.nn.Sequential(torch.nn.Linear(8, width), torch.nn.LayerNorm(width), torch.nn.ReLU(),
                                       torch.nn.Linear(width, 2)))
    optimizer = torch.optim.AdamW(model.parameters())
    with untraced():
        x = torch.linspace(-1, 1, 32).reshape(4, 8)
    loss = model(x).pow(2).mean()
    loss.backward()
    optimizer.step()
    return loss


def _record(fn: Any, *args: Any) -> List[Dict[str, Any]]:
    with Recorder() as recorder:
        fn(*args)
    return recorder.ops


def _by_op(ops: List[Dict[str, Any]], name: str) -> List[Dict[str, Any]]:
    return [op for op in ops if op["op"] == name]


# --------------------------------------------------------------------------- the recorder


def test_forward_backward_and_optimizer_ops_are_recorded_in_order_with_module_paths() -> None:
    ops = _record(_train_step)
    assert [op["index"] for op in ops] == list(range(len(ops)))
    names = [op["op"] for op in ops]
    forward = names.index("aten.native_layer_norm.default")
    backward = names.index("aten.native_layer_norm_backward.default")
    step = names.index("aten.addcdiv_.default")  # AdamW's update
    assert forward < backward < step
    assert ops[forward]["module"] == "1"  # the path named_modules() gives the LayerNorm
    assert {op["module"] for op in _by_op(ops, "aten.addmm.default")} == {"0", "3"}
    assert ops[backward]["module"] is None and ops[step]["module"] is None  # no module runs them


def test_inputs_name_the_op_that_made_them_and_follow_in_place_updates() -> None:
    ops = _record(_train_step)
    uniform = [op["index"] for op in _by_op(ops, "aten.uniform_.default")]
    first_t = _by_op(ops, "aten.t.default")[0]
    assert first_t["inputs"] == [f"#{uniform[0]}.0"]  # the weight, as its init left it
    addcdiv = _by_op(ops, "aten.addcdiv_.default")[0]
    assert all(src.startswith("#") for src in addcdiv["inputs"])  # param, exp_avg, denom: all traced
    weight_decay = _by_op(ops, "aten.mul_.Tensor")[0]  # AdamW's in-place decay of the same weight
    assert weight_decay["inputs"] == [f"#{uniform[0]}.0"]
    for op in ops:
        for src in op["inputs"]:
            if src.startswith("#"):
                i, j = (int(p) for p in src[1:].split("."))
                assert i < op["index"] and j < len(ops[i]["outputs"])


def test_a_tensor_made_outside_the_trace_is_listed_by_its_canonical_fingerprint() -> None:
    x = torch.linspace(-1, 1, 12).reshape(3, 4)
    before = x.clone()

    def body() -> None:
        y = x * 2
        with untraced():
            x.add_(1)  # an update the trace did not see: a new version, a new fingerprint
        y + x

    ops = _record(body)
    assert ops[0]["inputs"] == [fingerprint(before).digest]
    assert ops[1]["inputs"] == ["#0.0", fingerprint(x).digest]


def test_uninitialised_memory_and_its_views_carry_no_fingerprint() -> None:
    def body() -> None:
        e = torch.empty(4, 4)
        e.view(16)
        torch.empty_like(e)
        e.fill_(1.0)

    ops = _record(body)
    assert [op["op"] for op in ops] == ["aten.empty.memory_format", "aten.view.default",
                                        "aten.empty_like.default", "aten.fill_.Scalar"]
    for op in ops[:3]:
        assert op["outputs"][0]["fingerprint"] is None and op["outputs"][0]["sample"] is None
        assert op["outputs"][0]["shape"] in ("[4, 4]", "[16]")
    assert ops[3]["inputs"] == []  # fill_ overwrites: the old contents are no input
    assert ops[3]["outputs"][0]["fingerprint"] == fingerprint(torch.ones(4, 4)).digest


def test_out_arguments_and_in_place_ops_that_return_nothing_are_outputs() -> None:
    a, b = torch.ones(3), torch.arange(3.0)

    def body() -> None:
        out = torch.empty(3)
        torch.add(a, b, out=out)
        torch._foreach_add_([out], [b])

    ops = _record(body)
    add, foreach = ops[1], ops[2]
    assert add["inputs"] == [fingerprint(a).digest, fingerprint(b).digest]  # out= is not an input
    assert add["outputs"][0]["fingerprint"] == fingerprint(a + b).digest
    assert foreach["op"] == "aten._foreach_add_.List"
    assert foreach["outputs"][0]["fingerprint"] == fingerprint(a + 2 * b).digest


@pytest.mark.parametrize("make", [
    lambda: torch.linspace(-3, 3, 300).reshape(10, 30),
    lambda: torch.linspace(-3, 3, 300).reshape(10, 30).t(),
    lambda: torch.linspace(-3, 3, 5).expand(7, 5),
    lambda: torch.linspace(-3, 3, 40).to(torch.bfloat16),
    lambda: torch.linspace(-3, 3, 40).to(torch.float16),
    lambda: torch.linspace(-3, 3, 40, dtype=torch.float64)[::3],
    lambda: torch.arange(50) % 7 == 0,
    lambda: torch.arange(-20, 20, dtype=torch.int8),
    lambda: torch.tensor(2.5),
    lambda: torch.nn.Parameter(torch.ones(3, 3)),
    lambda: torch.complex(torch.ones(20), torch.arange(20.0)),
])
def test_the_recorders_fingerprint_is_the_canonical_one(make: Any) -> None:
    t = make()
    record = output_record(t)
    fp = fingerprint(t)
    assert (record["fingerprint"], record["dtype"], record["sample"]) == (fp.digest, fp.dtype, fp.sample)
    assert record["shape"] == str(list(fp.shape))


def test_outside_a_trace_traced_and_untraced_do_nothing() -> None:
    model = torch.nn.Linear(2, 2)
    assert traced(model) is model
    with untraced():
        pass
    assert not model._forward_pre_hooks and not model._forward_hooks


def test_the_recorder_removes_its_module_hooks() -> None:
    model = torch.nn.Sequential(torch.nn.Linear(2, 2))
    with Recorder():
        traced(model)(torch.ones(1, 2))
    assert not model[0]._forward_pre_hooks and not model[0]._forward_hooks


# --------------------------------------------------------------------------- trace probes


@pytest.fixture
def trace_probes(empty_registry: None) -> None:
    @probe("test.scaled", grid={"scale": [1.0, 3.0]}, library="torch", kind="trace")
    def scaled(scale: float) -> Any:
        x = torch.ones(4)
        (x * scale).sum()  # an intermediate that depends on the parameter
        return torch.zeros(2)  # an output that does not

    @probe("test.long", grid={"n": [3000]}, library="torch", kind="trace")
    def long(n: int) -> Any:
        x = torch.zeros(8)
        for _ in range(n):
            x = x + 1
        return x


def test_the_case_fingerprint_covers_the_trace_not_only_the_output(trace_probes: None) -> None:
    one, three = (run_case(c) for c in registry.get("test.scaled").cases())
    assert one["status"] == three["status"] == "ok" and one["repeat_identical"] is True
    assert one["sample"] == three["sample"]  # the output itself is the same ...
    assert one["fingerprint"] != three["fingerprint"]  # ... the trace is not
    assert one["blocks"] is None  # where traces part is the trace's job, not the blocks'
    assert [op["op"] for op in one["trace"]] == ["aten.ones.default", "aten.mul.Tensor", "aten.sum.default",
                                                 "aten.zeros.default"]


def test_a_trace_of_thousands_of_ops_reads_back_with_plain_pandas(trace_probes: None, tmp_path: Any) -> None:
    record = run_case(registry.get("test.long").cases()[0], repeat=False)
    assert len(record["trace"]) == 3001
    run = Run.new({"machine_id": "test"})
    run.records.append(record)
    path = write_run(run, str(tmp_path))
    frame = pd.read_parquet(path)
    trace = frame["trace"].iloc[0]
    assert len(trace) == 3001
    last = trace[-1]
    assert last["op"] == "aten.add.Tensor" and list(last["inputs"]) == ["#2999.0"]
    assert last["outputs"][0]["fingerprint"] == fingerprint(torch.full((8,), 3000.0)).digest
    assert first_divergence(trace, record["trace"]) is None  # numpy arrays of dicts and lists alike


# --------------------------------------------------------------------------- first divergence


def _op(index: int, op: str, inputs: List[str], *outputs: Any) -> Dict[str, Any]:
    return {"index": index, "op": op, "module": None, "inputs": inputs, "outputs": list(outputs)}


def _out(t: Any) -> Dict[str, Any]:
    return output_record(t)


def test_identical_traces_have_no_divergence() -> None:
    assert first_divergence(_record(_train_step), _record(_train_step)) is None


def test_real_traces_under_one_and_two_threads_part_at_an_op_with_identical_inputs() -> None:
    saved = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = _record(_train_step, 256)
        torch.set_num_threads(2)
        two = _record(_train_step, 256)
    finally:
        torch.set_num_threads(saved)
    found = first_divergence(one, two)
    if found is None:
        pytest.skip("this torch computes the step bit-identically on 1 and 2 threads")
    assert found.inputs_identical  # every input of the first differing op was identical
    assert found.op == one[found.index]["op"] == two[found.index]["op"]
    assert found.difference in (Difference.NUMERICAL_DRIFT, Difference.SPARSE)
    assert found.ops == len(one) and 0 <= found.ops_differing < found.ops - found.index


def test_a_difference_from_outside_the_trace_is_inherited() -> None:
    def body(x: Any) -> None:
        (x * 2).exp()

    with untraced():
        a, b = torch.linspace(1, 2, 50), torch.linspace(1, 2, 50).nextafter(torch.tensor(3.0))
    found = first_divergence(_record(body, a), _record(body, b))
    assert found == TraceDivergence(0, "aten.mul.Tensor", None, False, Difference.NUMERICAL_DRIFT, 1.0, 1, 2)


def test_different_op_sequences_are_structural() -> None:
    x = torch.ones(3)
    plus = [_op(0, "aten.add.Tensor", ["f"], _out(x + 1))]
    minus = [_op(0, "aten.sub.Tensor", ["f"], _out(x + 1))]
    found = first_divergence(plus, minus)
    assert found is not None and found.difference is Difference.STRUCTURAL and found.max_ulp is None
    longer = plus + [_op(1, "aten.exp.default", ["#0.0"], _out((x + 1).exp()))]
    found = first_divergence(plus, longer)
    assert found is not None and (found.index, found.op, found.difference) == (1, "aten.exp.default",
                                                                               Difference.STRUCTURAL)
    assert found.ops == 2 and found.ops_differing == 0


def test_kinds_from_the_samples() -> None:
    x = torch.linspace(1, 2, 1000)
    far = x * 3
    sparse = x.clone()
    sparse[500] += 1  # element 500 is not among the sampled ones
    assert 500 not in fingerprint(x).sample_index
    for other, kind, ulps in [(far, Difference.STREAM_CHANGE, None), (sparse, Difference.SPARSE, None),
                              (torch.arange(1000) % 3, Difference.STRUCTURAL, None)]:
        found = first_divergence([_op(0, "aten.f", ["#"], _out(x))], [_op(0, "aten.f", ["#"], _out(other))])
        assert found is not None and found.difference is kind
        if kind is Difference.STREAM_CHANGE:
            assert found.max_ulp is not None and found.max_ulp > 1e6
        else:
            assert found.max_ulp is ulps


def test_later_ops_that_differ_are_counted() -> None:
    x = torch.linspace(1, 2, 10)
    a = [_op(i, "aten.f", [], _out(x + i)) for i in range(6)]
    b = [_op(i, "aten.f", [], _out(x + i + (i in (2, 3, 5)))) for i in range(6)]
    found = first_divergence(a, b)
    assert found is not None and (found.index, found.ops_differing, found.ops) == (2, 2, 6)


def test_one_line() -> None:
    d = TraceDivergence(10, "aten.native_layer_norm.default", "1", True, Difference.NUMERICAL_DRIFT, 2.0, 57, 120)
    assert one_line(d) == ("first divergence: op 10 aten.native_layer_norm.default in 1 (inputs identical), "
                           "drift 2 ULP; 57 of 109 later ops differ")
    root = TraceDivergence(0, "aten.mul.Tensor", "", False, Difference.STREAM_CHANGE, math.inf, 0, 1)
    assert one_line(root) == ("first divergence: op 0 aten.mul.Tensor in (root) (inputs differ: inherited), "
                              "stream change")
    assert d.as_dict()["difference"] == "numerical-drift" and d.as_dict()["inputs_identical"] is True


# --------------------------------------------------------------------------- the catalogue's model traces


@pytest.mark.parametrize("key, expected", [
    ("torch.nn.TransformerEncoderLayer", {("aten.embedding.default", "0"), ("aten.addmm.default", "1.linear1"),
                                          ("aten.native_layer_norm.default", "1.norm1")}),
    ("torch.nn.Conv2d:train", {("aten.convolution.default", "0"), ("aten.max_pool2d_with_indices.default", "3")}),
    ("torch.nn.LSTM", {("aten.addmm.default", "head")}),
    ("torch.utils.data.DataLoader:pipeline", {("aten.randperm.generator", None), ("aten.randn.default", None)}),
])
def test_model_traces_run_repeatably_and_name_their_modules(key: str, expected: Any) -> None:
    record = run_case(registry.get(key).cases()[0])
    assert record["status"] == "ok", record.get("message")
    assert record["repeat_identical"] is True
    assert expected <= {(op["op"], op["module"]) for op in record["trace"]}
    assert registry.get(f"{key}@cuda").device == "cuda"


@pytest.mark.gpu
@pytest.mark.parametrize("key", ["torch.nn.TransformerEncoderLayer@cuda", "torch.nn.Conv2d:train@cuda",
                                 "torch.nn.LSTM@cuda", "torch.utils.data.DataLoader:pipeline@cuda"])
def test_model_traces_on_cuda(key: str) -> None:
    record = run_case(registry.get(key).cases()[0])
    assert record["status"] == "ok", record.get("message")
    assert len(record["trace"]) > 50
    assert any(op["module"] is not None for op in record["trace"]) or "DataLoader" in key


def test_one_line_calls_only_value_differences_inherited() -> None:
    parted = TraceDivergence(4, "aten.detach.default", None, False, Difference.STRUCTURAL, None, 3, 9)
    assert one_line(parted) == ("first divergence: op 4 aten.detach.default (inputs differ), structural; "
                                "3 of 4 later ops differ")
