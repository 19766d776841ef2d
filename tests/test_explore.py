"""explore: persistent workers, the hypothesis search, and the structure of the answer.

The end-to-end cases run pure-Python probes (tests/explore_probes.py) whose result depends on
the hash seed exactly where the probe says, under the ``PYTHONHASHSEED`` axis, so every
answer is known in advance.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import sys
from contextlib import redirect_stdout
from typing import Any, Dict, List

import pytest

from audit import cli, domains
from audit.explore.search import Outcome, Trial, compare_records
from audit.explore.strategies import Fixed, merged, parse_param
from audit.explore.structure import structure
from audit.explore.workers import ServeWorker
from audit.runner.spec import RunSpec
from audit.worker import serve

HERE = os.path.dirname(os.path.abspath(__file__))
AXIS = ["--axis", "PYTHONHASHSEED=1,2", "--probes-from", "tests.explore_probes"]


def explore(*argv: str) -> tuple:
    out = io.StringIO()
    with redirect_stdout(out):
        code = cli.main(["explore", *argv])
    return code, out.getvalue()


def answer(*argv: str) -> tuple:
    code, text = explore(*argv, "--json")
    return code, json.loads(text)


# --------------------------------------------------------------------------- end to end


def test_a_sharp_boundary_is_found_and_stated() -> None:
    code, data = answer("tests.explore.boundary", *AXIS, "--examples", "60", "--seed", "3")
    assert code == 1
    assert data["verdict"] == "boundary"
    assert data["smallest"]["params"] == {"size": 101}
    assert data["smallest"]["kind"] == "stream-change"
    assert data["region"]["identical_up_to"] == 100 and data["region"]["differs_from"] == 101
    assert data["region"]["rate_from"] == 1.0
    assert "identical for every size tried up to 100" in data["statement"]
    assert all(t["outcome"] == "identical" for t in data["near"]["agreeing"])
    assert data["seed"] == 3 and "--seed 3" in data["replay"]


def test_the_same_seed_replays_the_same_search() -> None:
    first = answer("tests.explore.scattered", *AXIS, "--examples", "25", "--seed", "11")[1]
    again = answer("tests.explore.scattered", *AXIS, "--examples", "25", "--seed", "11")[1]
    assert first["smallest"] == again["smallest"] and first["counts"] == again["counts"]


def test_scattered_differences_claim_no_boundary() -> None:
    code, text = explore("tests.explore.scattered", *AXIS, "--examples", "60", "--seed", "5")
    assert code == 1
    assert "no boundary: differences are scattered" in text
    smallest = int(text.split("smallest differing example: size=")[1].split()[0])
    assert smallest % 7 == 3


def test_no_difference_is_one_answer_and_exit_0() -> None:
    code, data = answer("tests.explore.same", *AXIS, "--examples", "30", "--seed", "1")
    assert code == 0 and data["verdict"] == "no-difference" and data["smallest"] is None
    assert data["counts"]["identical"] >= 30


def test_invariance_in_one_worker_finds_the_batches_that_differ() -> None:
    code, data = answer("tests.explore.batch", "--probes-from", "tests.explore_probes", "--invariance", "batch",
                        "--seed", "2")
    assert code == 1 and data["mode"] == "invariance"
    assert data["verdict"] == "boundary"
    assert data["region"]["differs_up_to"] == 7 and data["region"]["identical_from"] == 8
    assert data["smallest"]["params"] == {"batch": 1}


def test_a_users_probe_from_a_file() -> None:
    code, data = answer("myproject.predict", "--probes-from", os.path.join(HERE, "user_predict.py"),
                        "--invariance", "batch", "--seed", "1")
    assert code == 1
    differing = {t["params"]["batch"] for t in data["near"]["differing"]}
    assert differing <= {1, 2, 3, 5, 9, 10, 11}  # the batches whose (last) call holds fewer than 4 rows
    assert data["smallest"]["params"] == {"batch": 1}


@pytest.mark.parametrize("argv, message", [
    (["tests.explore.undeclared", *AXIS], "declares no search domains"),
    (["tests.explore.same", *AXIS, "--invariance", "batch"], "not allowed with"),
    (["tests.explore.same", "--probes-from", "tests.explore_probes", "--invariance", "batch"], "has none"),
    (["tests.explore.same", "--probes-from", "tests.explore_probes", "--axis", "threads=1"], "at least two values"),
    (["tests.explore.same", "--probes-from", "tests.explore_probes", "--axis", "load=idle,busy"], "load axis"),
    (["tests.explore.nothing", *AXIS], "no probe named"),
    (["tests.explore.same", *AXIS, "--param", "width=1..3"], "no parameter 'width'"),
    (["tests.explore.same", *AXIS, "--param", "size=9..3"], "lo <= hi"),
])
def test_usage_errors_are_one_line_and_exit_2(argv: List[str], message: str, capsys: Any) -> None:
    with pytest.raises(SystemExit) if "not allowed with" in message else contextlib.nullcontext():
        code = cli.main(["explore", *argv])
        assert code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


# --------------------------------------------------------------------------- workers


def test_a_worker_that_dies_is_answered_as_a_crash_and_restarted() -> None:
    worker = ServeWorker(RunSpec(modules=["tests.explore_probes"], python=sys.executable, case_timeout=60), "w")
    try:
        worker.start()
        crash = worker.request({"type": "case", "probe": "tests.explore.crashes", "params": {"size": 5}, "plain": True})
        assert crash["type"] == "crash"
        fine = worker.request({"type": "case", "probe": "tests.explore.crashes", "params": {"size": 7}, "plain": True})
        assert fine["type"] == "record" and fine["status"] == "ok" and worker.starts == 2
        assert compare_records([crash, fine])["outcome"] is Outcome.ERROR
    finally:
        worker.close()


def test_serve_answers_each_request_in_process() -> None:
    import tests.explore_probes  # noqa: F401  (registers the probes here)

    sent: List[Dict[str, Any]] = []
    lines = [json.dumps({"type": "describe", "probe": "tests.explore.batch", "id": 1}),
             json.dumps({"type": "case", "probe": "tests.explore.batch", "params": {"rows": 2, "batch": 3},
                         "plain": True, "id": 2}),
             json.dumps({"type": "case", "probe": "tests.explore.nothing", "params": {}, "id": 3}),
             "not json", "[1, 2]", json.dumps({"type": "quit"}), json.dumps({"type": "describe", "probe": "x"})]
    assert serve.serve(lines, sent.append) == 0
    assert [m["type"] for m in sent] == ["probe", "record", "error", "error", "error"]  # nothing after quit
    assert sent[4] == {"type": "error", "id": None, "message": "a request is a JSON object"}
    assert sent[0]["invariance"] == "batch" and sent[0]["search"]["batch"]["compared_with"] == {"integers": [1, 16]}
    assert sent[1]["status"] == "ok" and sent[1]["id"] == 2


# --------------------------------------------------------------------------- pure parts


def test_param_spellings() -> None:
    assert parse_param("size=1..100") == ("size", domains.integers(1, 100))
    assert parse_param("shape=1..4,2..8") == ("shape", domains.tuples(domains.integers(1, 4), domains.integers(2, 8)))
    assert parse_param("dtype=float32,float64") == ("dtype", domains.sampled_from(["float32", "float64"]))
    assert parse_param("shape=[8,1000]") == ("shape", Fixed([8, 1000]))
    assert parse_param("seed=3") == ("seed", Fixed(3))
    declared = {"batch": domains.compared_with(domains.integers(1, 32), same_as="n")}
    search, fixed = merged(declared, [parse_param("batch=1..4"), parse_param("n=9")], {"batch": [], "n": []}, "batch")
    assert search == {"batch": domains.compared_with(domains.integers(1, 4), same_as="n")} and fixed == {"n": 9}


def _trial(size: int, differs: bool) -> Trial:
    return Trial({"size": size}, Outcome.DIFFERS if differs else Outcome.IDENTICAL)


def test_structure_rules() -> None:
    dom = domains.integers(1, 1000)
    sharp = structure([_trial(n, n > 50) for n in range(1, 101)], "size", dom)
    assert sharp.verdict == "boundary" and sharp.identical_up_to == 50 and sharp.differs_from == 51
    # two agreeing examples below a 20% rate are no evidence of a boundary
    sparse = structure([_trial(1, False), _trial(2, False)] + [_trial(n, n % 5 == 0) for n in range(3, 100)],
                       "size", dom)
    assert sparse.verdict == "scattered"
    assert structure([_trial(n, False) for n in range(1, 9)], "size", dom).verdict == "no-difference"
    assert structure([_trial(n, True) for n in range(1, 9)], "size", dom).verdict == "everywhere"
    failed = Trial({"size": 3}, Outcome.ERROR, message="boom")
    closed = structure([_trial(1, False), failed], "size", dom)
    assert closed.verdict == "inconclusive" and "boom" in (closed.first_error or "")
    assert structure([failed], "size", dom).verdict == "inconclusive"


def test_tuple_parameters_are_ordered_by_their_product() -> None:
    dom = domains.tuples(domains.integers(1, 64), domains.integers(1, 64))
    trials = [Trial({"mkn": [a, b]}, Outcome.DIFFERS if a * b > 100 else Outcome.IDENTICAL)
              for a in range(1, 30, 3) for b in range(1, 30, 3)]
    found = structure(trials, "mkn", dom)
    assert found.verdict == "boundary" and found.measure == "mkn by the product of its elements"


def test_a_time_budget_stops_the_search_and_says_so() -> None:
    code, data = answer("tests.explore.same", *AXIS, "--time", "1", "--seed", "1")
    assert code == 0 and data["stopped"] == "time" and data["examples"] is None
    assert "--time 1" in data["replay"]
