"""From run files to one small table of distinct outcomes per case and environment.

Scale is the point of this module.  A year of nightly results is ~10 million rows, but
only a few thousand distinct (case, environment, status, fingerprint) combinations, so:

- the store reads five narrow columns, strings dictionary-encoded (categoricals);
- the environment is kept once per run (``runs``) and numbered: two runs share an
  environment id when every environment field is equal (run id and start time aside);
- every per-row step works on integer codes, and the rows collapse at once into
  :class:`Frame.outcomes`, one row per distinct combination with its row count and the
  position of its first row (to fetch samples and descriptions later for a handful of rows).

Cases are grouped by ``case_key`` (probe key, device, canonical params) and probe
version.  Of several probe versions of one case only the newest (the version of the
latest run) is compared; the others are noted.  With ``cross_device`` a case is keyed by
probe id and params instead, and ``device`` becomes an environment field.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any, Dict, List, Sequence, Tuple

import numpy as np
import pandas as pd

from audit.store import runfile as store
from audit.store import scan
from audit.worker.environment import FIELDS as ENV_FIELDS
from audit.worker.records import Status

ROW_COLUMNS = ("case_key", "probe_version", "status", "fingerprint", "repeat_identical")
DESCRIBE_COLUMNS = ("case_key", "probe", "probe_key", "device", "params", "probe_version")

#: Status codes used in the outcomes table, in Status order (ok=0, unsupported=1, ...).
STATUS_CODES = {s.value: i for i, s in enumerate(Status)}
OK, UNSUPPORTED = STATUS_CODES["ok"], STATUS_CODES["unsupported"]
FAILED = tuple(STATUS_CODES[s.value] for s in (Status.ERROR, Status.CRASH, Status.TIMEOUT))


@dataclass
class Frame:
    """The grouped data every compare function works on."""

    outcomes: pd.DataFrame  # case, env, status, fp, rep_false, n, first (run << 32 | row)
    runs: pd.DataFrame  # one row per run: path, run_id, run_started, environment fields
    envs: pd.DataFrame  # one row per environment id: its fields (None = unset)
    cases: pd.DataFrame  # one row per case id: probe, probe_key, device, params, probe_version
    fingerprints: np.ndarray  # fp code -> fingerprint string
    skipped: List[Any]
    rows: int
    notes: Dict[int, List[str]] = field(default_factory=dict)  # case id -> stale-version notes
    row_keys: Any = None  # per compared ok row: case, fp, run (int arrays) for exact run lists

    def runs_of(self, cases: List[int], limit: int = 100) -> Dict[Tuple[int, int], List[int]]:
        """(case, fp) -> the first ``limit`` runs (by position) that produced it, for the given cases."""
        case, fp, run = self.row_keys
        mask = np.isin(case, np.asarray(cases, dtype=np.int32))
        key = case[mask].astype(np.int64) * (int(fp.max(initial=0)) + 2) + fp[mask] + 1
        runs = run[mask]
        order = np.lexsort((runs, key))
        key, runs = key[order], runs[order]
        bounds = np.flatnonzero(np.diff(key)) + 1
        out: Dict[Tuple[int, int], List[int]] = {}
        width = int(fp.max(initial=0)) + 2
        for start, end in zip([0, *bounds.tolist()], [*bounds.tolist(), len(key)]):
            if start < end:
                k = int(key[start])
                out[(k // width, k % width - 1)] = runs[start:min(end, start + limit)].tolist()
        return out


def load(paths: Sequence[str], cross_device: bool = False) -> Frame:
    """Read every run under ``paths`` and group it (see the module doc)."""
    data = scan.read_run_rows(paths, list(ROW_COLUMNS))
    return build(data, cross_device)


def build(data: scan.RunRows, cross_device: bool = False) -> Frame:
    rows, runs = data.rows, data.runs
    key = rows["case_key"].cat.codes.to_numpy(np.int64)
    version = rows["probe_version"].cat.codes.to_numpy(np.int64)
    keep, notes_by_key = _newest_versions(key, version, rows["run"].to_numpy(), runs,
                                          list(rows["probe_version"].cat.categories))
    describe = _describe(rows, np.where(keep, key, -1), runs)  # described by the compared version
    case_of_key, cases = _case_ids(describe, cross_device)
    run_env, envs = _environments(runs)
    env = run_env[rows["run"].to_numpy()]
    if cross_device:
        device = describe["device"].to_numpy(object)[np.maximum(key, 0)]
        env, envs = _with_device(env, device, envs)
    first = (rows["run"].to_numpy(np.int64) << 32) | rows["row"].to_numpy(np.int64)
    columns = {"case": case_of_key[np.maximum(key, 0)], "env": env, "status": _status_codes(rows["status"]),
               "fp": rows["fingerprint"].cat.codes.to_numpy(np.int64),
               "rep_false": _repeat_false(rows["repeat_identical"]), "first": first}
    wanted = keep & (key >= 0)
    if not wanted.all():  # copy ten million rows only when some are set aside
        columns = {name: values[wanted] for name, values in columns.items()}
    notes: Dict[int, List[str]] = defaultdict(list)
    for k, text in notes_by_key.items():
        notes[int(case_of_key[k])].append(text)
    ok = columns["status"] == OK
    row_keys = (columns["case"][ok].astype(np.int32), columns["fp"][ok].astype(np.int32),
                (columns["first"][ok] >> 32).astype(np.int32))
    return Frame(_collapse(columns), runs, envs, cases, np.asarray(rows["fingerprint"].cat.categories, dtype=object),
                 data.skipped, len(rows), dict(notes), row_keys)


def _newest_versions(key: np.ndarray, version: np.ndarray, run: np.ndarray, runs: pd.DataFrame,
                     versions: List[str]) -> Tuple[np.ndarray, Dict[int, str]]:
    """Mask of rows of each case's newest probe version, and a note per case that had more."""
    combo = key * max(len(versions), 1) + version
    distinct = pd.unique(combo)
    if len(pd.unique(key)) == len(distinct):
        return np.ones(len(key), dtype=bool), {}
    order = runs["run_started"].fillna("").rank(method="first").to_numpy()[run]
    latest = pd.Series(order).groupby(combo).max()
    pairs = pd.DataFrame({"key": latest.index // max(len(versions), 1), "version": latest.index % max(len(versions), 1),
                          "latest": latest.to_numpy()})
    counts = pd.Series(1, index=combo).groupby(level=0).size()
    chosen = pairs.loc[pairs.groupby("key")["latest"].idxmax()].set_index("key")["version"]
    keep = version == chosen.reindex(np.arange(key.max() + 1), fill_value=-1).to_numpy()[key]
    notes: Dict[int, str] = {}
    for k, group in pairs.groupby("key"):
        old = [f"{versions[v]} ({counts[k * len(versions) + v]} rows)" for v in group["version"] if v != chosen[k]]
        if old:
            notes[int(k)] = f"probe version {versions[chosen[k]]} compared; older versions set aside: {', '.join(old)}"
    return keep, notes


def _describe(rows: pd.DataFrame, key: np.ndarray, runs: pd.DataFrame) -> pd.DataFrame:
    """probe, probe_key, device, params, probe_version of each case key, from its first row."""
    codes = np.arange(len(rows["case_key"].cat.categories))
    first = pd.Series(np.arange(len(key))).groupby(key).min()
    first = first[first.index >= 0]
    wanted = pd.DataFrame({"run": rows["run"].to_numpy()[first.to_numpy()],
                           "row": rows["row"].to_numpy()[first.to_numpy()], "key": first.index})
    found: Dict[int, Dict[str, Any]] = {}
    for run, group in wanted.groupby("run"):
        got = store.read_rows(str(runs["path"].iat[run]), group["row"].tolist(), DESCRIBE_COLUMNS)
        found.update(zip(group["key"].tolist(), got))
    empty = dict.fromkeys(DESCRIBE_COLUMNS)
    return pd.DataFrame([found.get(int(c), empty) for c in codes], columns=list(DESCRIBE_COLUMNS))


def _case_ids(describe: pd.DataFrame, cross_device: bool) -> Tuple[np.ndarray, pd.DataFrame]:
    """Case id per case key; in cross-device mode the device drops out of the key."""
    if not cross_device:
        return np.arange(len(describe)), describe.reset_index(drop=True)
    ident = describe["probe"].fillna("") + "\x1f" + describe["params"].fillna("")
    codes, _ = pd.factorize(ident)
    cases = describe.groupby(codes, sort=True).agg(
        case_key=("case_key", "first"), probe=("probe", "first"), probe_key=("probe_key", "first"),
        device=("device", lambda s: "+".join(sorted(set(s.dropna())))), params=("params", "first"),
        probe_version=("probe_version", lambda s: "+".join(sorted(set(s.dropna())))))
    return codes, cases.reset_index(drop=True)


def _environments(runs: pd.DataFrame) -> Tuple[np.ndarray, pd.DataFrame]:
    """Environment id of every run, and the table of distinct environments."""
    if runs.empty:
        return np.zeros(0, dtype=np.int64), pd.DataFrame(columns=list(ENV_FIELDS))
    codes = runs.groupby(list(ENV_FIELDS), dropna=False, sort=False).ngroup().to_numpy()
    first = pd.Series(np.arange(len(codes))).groupby(codes).min().to_numpy()
    envs = runs[list(ENV_FIELDS)].iloc[first].reset_index(drop=True)
    return codes.astype(np.int64), envs.astype(object).where(envs.notna(), None)


def _with_device(env: np.ndarray, device: np.ndarray, envs: pd.DataFrame) -> Tuple[np.ndarray, pd.DataFrame]:
    """Cross-device mode: (environment, device) pairs become the environments."""
    dev_codes, dev_names = pd.factorize(device)
    combined, uniques = pd.factorize(env * max(len(dev_names), 1) + dev_codes)
    base = envs.iloc[uniques // max(len(dev_names), 1)].reset_index(drop=True)
    base["device"] = np.asarray(dev_names, dtype=object)[uniques % max(len(dev_names), 1)]
    return combined.astype(np.int64), base


def _status_codes(status: pd.Series) -> np.ndarray:
    lookup = np.array([STATUS_CODES.get(str(c), FAILED[0]) for c in status.cat.categories] + [FAILED[0]])
    return lookup[status.cat.codes.to_numpy()]  # code -1 (null status) maps to the last entry


def _repeat_false(values: pd.Series) -> np.ndarray:
    if values.dtype == bool:
        return ~values.to_numpy()
    return values.astype("boolean").eq(False).fillna(False).to_numpy(bool)


def _collapse(table: Dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per distinct (case, env, status, fp, rep_false), with count and first row.

    The five codes are packed into one int64 and factorized (hashing, not sorting); rows
    arrive in (run, row) order, so a code's first occurrence is its earliest row.
    """
    n_env = int(table["env"].max()) + 1 if len(table["env"]) else 1
    n_lo = (int(table["fp"].max()) + 2) * 16 if len(table["fp"]) else 16
    hi = table["case"].astype(np.int64) * n_env + table["env"]
    lo = (table["fp"] + 1) * 16 + table["status"] * 2 + table["rep_false"].astype(np.int64)
    if (int(hi.max()) + 1 if len(hi) else 1) * n_lo >= 2**62:
        raise OverflowError("too many distinct cases, environments and fingerprints to pack")
    codes, uniques = pd.factorize(hi * n_lo + lo)
    size = np.bincount(codes, minlength=len(uniques))
    position = np.empty(len(uniques), dtype=np.int64)
    position[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write wins: the first occurrence
    hi, lo = uniques // n_lo, uniques % n_lo
    out = pd.DataFrame({
        "case": hi // n_env, "env": hi % n_env, "status": (lo % 16) // 2, "fp": lo // 16 - 1,
        "rep_false": (lo % 2).astype(bool), "n": size, "first": table["first"][position],
    })
    return out.sort_values(["case", "env", "status", "fp"], kind="stable").reset_index(drop=True)
