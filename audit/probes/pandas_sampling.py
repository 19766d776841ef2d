"""pandas' ``sample``: which rows a seeded ``DataFrame.sample`` / ``Series.sample`` picks.

pandas turns ``random_state`` into a numpy generator (an int into a legacy
``RandomState``, a ``Generator`` kept as is since pandas 1.1, ``None`` into numpy's global
generator) and then calls ``choice`` on it, with its own normalisation of ``frac`` and
``weights`` in between.  So a pandas upgrade can move the sampled rows even when numpy's
stream is unchanged, and the reverse.  The output is the sampled index labels next to a
column's values (the frame's index is not ``0..n-1``, so labels and positions differ).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

from audit.probe_api import SEEDS, Output, Unsupported, probe, require_seed_range

#: The family reports group these probes under (read at registration; the decorators stay as
#: they are).
FAMILY = "pandas"

#: How the case's seed reaches pandas.
RANDOM_STATE_KINDS = ("int", "generator", "global")

#: sample arguments: a count, a fraction, weights, and with replacement.
MODES = ("n", "frac", "weights", "replace")

_ROWS = 1000
_GRID = {"seed": SEEDS, "random_state": RANDOM_STATE_KINDS, "mode": MODES}


def _version(module: Any) -> Tuple[int, ...]:
    return tuple(int(part) for part in module.__version__.split(".")[:2] if part.isdigit())


def _random_state(seed: int, kind: str) -> Tuple[Any, Callable[[], Any]]:
    """(the random_state argument, a function giving the generator's state after the draw).

    An int random_state makes a RandomState inside pandas that the probe cannot see: no state.
    """
    import numpy as np
    import pandas as pd

    if kind == "generator":
        if _version(pd) < (1, 1):
            raise Unsupported(
                f"pandas {pd.__version__} takes no numpy Generator as random_state (needs 1.1)"
            )
        if seed < 0:
            raise Unsupported(f"numpy.random.default_rng takes non-negative seeds, not {seed}")
        rng = np.random.default_rng(seed)
        return rng, lambda: rng.bit_generator.state
    require_seed_range(seed, 0, 2**32 - 1, "numpy.random.RandomState (pandas' int random_state)")
    if kind == "global":
        np.random.seed(seed)
        return None, np.random.get_state
    return seed, lambda: None


def _kwargs(mode: str, weights: Any) -> Dict[str, Any]:
    choices: Dict[str, Dict[str, Any]] = {
        "n": {"n": 100},
        "frac": {"frac": 0.25},
        "weights": {"n": 100, "weights": weights},
        "replace": {"n": _ROWS, "replace": True},
    }
    return choices[mode]


def _frame() -> Any:
    import numpy as np
    import pandas as pd

    rows = np.arange(_ROWS, dtype=np.int64)
    return pd.DataFrame({"a": rows * 3, "w": (rows % 7 + 1).astype(np.float64)}, index=rows * 7 + 3)


def _result(picked: Any, values: Any, state: Callable[[], Any]) -> Output:
    import numpy as np

    labels = np.asarray(picked.index, dtype=np.int64)
    return Output(np.column_stack([labels, np.asarray(values, dtype=np.int64)]), state())


@probe("pandas.DataFrame.sample", grid=_GRID, library="pandas", min_version="1.0")
def dataframe_sample(seed: int, random_state: str, mode: str) -> Output:
    """DataFrame.sample by count, fraction, a weights column name, and with replacement."""
    frame = _frame()
    state_arg, state = _random_state(seed, random_state)
    picked = frame.sample(random_state=state_arg, **_kwargs(mode, "w"))
    return _result(picked, picked["a"], state)


@probe("pandas.Series.sample", grid=_GRID, library="pandas", min_version="1.0")
def series_sample(seed: int, random_state: str, mode: str) -> Output:
    """Series.sample with the same arguments (weights as an array)."""
    frame = _frame()
    series = frame["a"]
    state_arg, state = _random_state(seed, random_state)
    picked = series.sample(random_state=state_arg, **_kwargs(mode, frame["w"].to_numpy()))
    return _result(picked, picked, state)
