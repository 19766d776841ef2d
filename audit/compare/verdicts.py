"""One verdict per case, decided on the collapsed outcomes table in the order of Verdict.

Pure functions of :class:`audit.compare.grouping.Frame` data; vectorised with pandas, so
the cost does not depend on how many runs repeated the same outcome.
"""

from __future__ import annotations

from typing import Dict, Mapping, Optional

import numpy as np
import pandas as pd

from audit.compare.grouping import FAILED, OK, UNSUPPORTED
from audit.compare.model import Verdict


def case_summary(outcomes: pd.DataFrame) -> pd.DataFrame:
    """Per case: the facts the verdict order needs (indexed by case id)."""
    ok = outcomes[outcomes["status"] == OK]
    by_case = outcomes.groupby("case")
    summary = pd.DataFrame({
        "failed": by_case["status"].agg(lambda s: bool(np.isin(s.to_numpy(), FAILED).any())),
        "rows": by_case["n"].sum(),
        "unsupported": outcomes[outcomes["status"] == UNSUPPORTED].groupby("case")["n"].sum(),
    })
    ok_case = ok.groupby("case")
    summary["ok_rows"] = ok_case["n"].sum()
    summary["streams"] = ok_case["fp"].nunique()
    summary["repeat_false"] = ok_case["rep_false"].any()
    summary["same_env_split"] = (ok.groupby(["case", "env"])["fp"].nunique() > 1).groupby(level=0).any()
    defaults = {"unsupported": 0, "ok_rows": 0, "streams": 0, "repeat_false": False, "same_env_split": False}
    return summary.fillna(defaults).astype({"unsupported": int, "ok_rows": int, "streams": int,
                                            "repeat_false": bool, "same_env_split": bool})


def verdicts(summary: pd.DataFrame, stale: Mapping[int, object]) -> Dict[int, Optional[Verdict]]:
    """Verdict per case (None for cases unsupported everywhere); the first rule that applies wins."""
    has_stale = np.array([c in stale for c in summary.index], dtype=bool)
    rules = [
        (Verdict.ERROR, summary["failed"].to_numpy()),
        (Verdict.NONDETERMINISTIC, (summary["repeat_false"] | summary["same_env_split"]).to_numpy()),
        (Verdict.DIVERGENT, (summary["streams"] > 1).to_numpy()),
        # tested before identical: a single run of a changed probe agrees with nothing
        (Verdict.INCOMPARABLE, (summary["ok_rows"] == 1).to_numpy() & has_stale),
        (Verdict.IDENTICAL, (summary["streams"] == 1).to_numpy()),
    ]
    out: Dict[int, Optional[Verdict]] = {}
    for i, case in enumerate(summary.index):
        out[int(case)] = next((verdict for verdict, applies in rules if applies[i]), None)
    return out
