"""Release lists: final releases only, yanked and incompatible ones skipped with a reason."""

from __future__ import annotations

import pytest

from audit.errors import UsageError
from audit.history import plan
from audit.history import releases as rel

TORCH = ["2.5.0rc1", "2.4.1", "2.4.0", "2.3.1", "2.3.0", "2.2.0.post1", "2.1.0", "2.13.0+cpu", "2.13.0",
         "2.0.1", "2.0.0", "1.13.1", "2.1.0.dev20230101"]


def test_parse_keeps_final_releases_only() -> None:
    assert rel.parse("2.4.1") == (2, 4, 1) and rel.parse("2.4") == (2, 4, 0)
    for text in ("2.5.0rc1", "2.2.0.post1", "2.13.0+cpu", "2.1.0.dev20230101", "two", ""):
        assert rel.parse(text) is None, text
    assert sorted(["2.10.0", "2.9.1", "2.1.0"], key=rel.key) == ["2.1.0", "2.9.1", "2.10.0"]


def test_select_skips_pre_releases_local_builds_and_out_of_range() -> None:
    got = rel.select("torch", TORCH, "2.0.1", "2.4.1", "test list")
    assert got.versions == ["2.0.1", "2.1.0", "2.3.0", "2.3.1", "2.4.0", "2.4.1"]
    assert got.skipped == {} and got.source == "test list"


def test_yanked_releases_are_skipped_with_their_reason() -> None:
    got = rel.select("numpy", ["2.3.5", "2.4.0", "2.4.1"], "2.3.5", "2.4.1", "index", yanked={"2.4.0"})
    assert got.versions == ["2.3.5", "2.4.1"]
    assert got.skipped == {"2.4.0": "yanked on the index"}


def test_releases_without_wheels_for_the_python_are_skipped_with_a_reason() -> None:
    with pytest.raises(UsageError, match=r"2.3.0 cannot be audited: no wheels for Python 3.13 \(the 2.3 series"):
        rel.select("torch", TORCH, "2.3.0", "2.4.1", "index", python="3.13")  # audit/runner/matrix.py's table
    assert rel.compatibility("torch", "2.0.1", "3.12") and rel.compatibility("torch", "2.99.0", "3.12") is None
    by_index = rel.select("torch", TORCH, "2.3.0", "2.4.1", "index", python="3.11",
                          installable=["2.3.0", "2.4.1"])
    assert by_index.versions == ["2.3.0", "2.4.1"]
    assert by_index.skipped == {"2.3.1": "no wheel for Python 3.11 on the index",
                                "2.4.0": "no wheel for Python 3.11 on the index"}


def test_an_end_that_cannot_be_audited_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="2.4.0 cannot be audited: yanked"):
        rel.select("torch", TORCH, "2.0.1", "2.4.0", "index", yanked={"2.4.0"})
    with pytest.raises(UsageError, match="not a release listed by index"):
        rel.select("torch", TORCH, "2.0.1", "2.4.7", "index")
    with pytest.raises(UsageError, match="older release"):
        rel.select("torch", TORCH, "2.4.1", "2.0.1", "index")
    with pytest.raises(UsageError, match="not a final release"):
        rel.check_release("torch", "2.5.0rc1")


def test_latest_means_the_newest_final_release() -> None:
    assert rel.select("torch", TORCH, "2.3.1", rel.LATEST, "index").versions == ["2.3.1", "2.4.0", "2.4.1", "2.13.0"]


def test_a_given_list_is_used_and_named_and_holds_the_ends() -> None:
    got = rel.releases("torch", "2.0.1", "2.4.1", None, given="2.2.0, 2.3.1")
    assert got.versions == ["2.0.1", "2.2.0", "2.3.1", "2.4.1"] and got.source == "the --versions list"
    with pytest.raises(UsageError, match="--versions holds 2.3.0rc1"):
        rel.releases("torch", "2.0.1", "2.4.1", None, given="2.3.0rc1")


def test_pip_index_output_and_pep691_yanked_flags_are_read() -> None:
    text = "torch (2.15.0)\nAvailable versions: 2.15.0, 2.14.1, 2.13.0+cpu\n  INSTALLED: 2.13.0+cpu\n"
    assert rel.parse_pip_index(text) == ["2.15.0", "2.14.1", "2.13.0+cpu"]
    assert rel.parse_pip_index("ERROR: No matching distribution") == []
    files = [{"filename": "numpy-2.4.0-cp311-cp311-manylinux.whl", "yanked": "bad build"},
             {"filename": "numpy-2.4.0.tar.gz", "yanked": True},
             {"filename": "numpy-2.4.1-cp311-cp311-manylinux.whl", "yanked": False},
             {"filename": "numpy-2.3.5.tar.gz", "yanked": True},
             {"filename": "numpy-2.3.5-cp39-cp39-win_amd64.whl"}]
    assert rel.yanked_from_simple(files, "numpy") == {"2.4.0"}


def test_the_history_audits_the_latest_patch_of_each_minor() -> None:
    assert plan.latest_patches(["2.0.0", "2.0.1", "2.1.2", "2.1.0", "2.10.0"]) == ["2.0.1", "2.1.2", "2.10.0"]


def test_bisect_picks_a_python_that_suits_both_ends() -> None:
    assert plan.for_bisect("torch", "2.0.1", "2.13.0", None).python == "3.11"
    numpy_old = plan.for_bisect("numpy", "1.19.5", "1.26.4", None)
    assert numpy_old.python == "3.9" and numpy_old.cell("1.20.3").torch is None
    assert plan.for_bisect("numpy", "1.26.4", "2.4.6", None).python == "3.12"
    with pytest.raises(UsageError, match=r"torch 1.13.1 is older than the audit supports \(torch 2.0 and newer\)"):
        plan.for_bisect("torch", "1.13.1", "2.4.1", None)
    with pytest.raises(UsageError, match="give --python"):
        plan.for_bisect("numpy", "1.19.5", "2.4.6", None)
    torch_new = plan.for_bisect("torch", "2.9.0", "2.13.0", "3.13")
    assert torch_new.cell("2.9.0").numpy == "2.2.6"  # numpy 1.26.4 has no wheels for 3.13
    assert plan.SERIES[0].cell("2.4.1").requirements == ["xxhash", "numpy==1.26.4", "torch==2.4.1"]
