"""The data the compare core receives: named records, fetched before anything is decided.

The shell (:mod:`audit.compare.fetch`) runs the queries and fills a :class:`Rows`; the pure
functions (:mod:`audit.compare.grouping`, :mod:`audit.compare.verdicts`,
:mod:`audit.compare.analysis`) take it as an argument and never read a file.  A test can
build a :class:`Rows` in memory and get a :class:`~audit.compare.model.Comparison` from it.

What arrives, and when:

1. ``runs``, ``envs``, ``outcomes`` and ``cases``: everything the verdicts need, from one
   grouped scan of every run file (a few thousand outcomes for ten million rows).
2. ``details`` and ``stream_runs``: only for the cases that are not identical, and only
   the rows :func:`audit.compare.analysis.needs` names: one row per stream (at most
   :data:`MAX_DETAILED` streams), the first failed rows (their messages), and the exact
   runs of a stream where the outcomes alone cannot tell them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, List, NamedTuple, Optional, Tuple

from audit.worker.records import Status

MAX_RUNS = 100  # run ids listed per stream
MAX_MESSAGES = 3  # error messages kept per finding
MAX_DETAILED = 20  # streams of a case whose representative row is fetched (the most common ones)

#: Statuses that make a case an error.
FAILED = (Status.ERROR, Status.CRASH, Status.TIMEOUT)


class RunInfo(NamedTuple):
    """One run, by its index in :attr:`Rows.runs` (runs are in start-time order)."""

    run_id: str
    started: Optional[str]


class Outcome(NamedTuple):
    """The rows of one case that share probe version, environment, status, fingerprint,
    repeat flag and invariance result: how many, and the first and last run among them."""

    case_key: str
    probe_version: str
    env: int  # index into Rows.envs
    status: Status
    fingerprint: Optional[str]
    repeat_false: bool  # a second execution in the same process disagreed
    # invariance cases: whether every parameter value agreed (None: not one)
    invariant: Optional[bool]
    variant_values: Optional[str]  # invariance cases: JSON list of the values that disagreed
    rows: int  # how many rows
    first_run: int  # index into Rows.runs
    last_run: int


class CaseRow(NamedTuple):
    """What describes a case (from the first run that has it, at its probe version)."""

    probe: Optional[str]
    probe_key: Optional[str]
    device: Optional[str]
    params: Optional[str]  # canonical JSON
    kind: Optional[str] = None  # generator, op or trace
    # invariance cases: the parameter that must not change the result
    invariance: Optional[str] = None
    family: Optional[str] = None  # the family the probe declares (null before schema 4)


class Pick(NamedTuple):
    """One stored row: run ``run``'s row of a case, with this status and fingerprint."""

    run: int
    case_key: str
    probe_version: str
    status: Status
    fingerprint: Optional[str]


class Detail(NamedTuple):
    """What a picked row holds beyond its fingerprint (schema 3 columns; None where unknown)."""

    dtype: Optional[str]
    shape: Optional[str]
    sample: Optional[str]  # hex of the sampled elements' canonical bytes
    blocks: Optional[bytes]  # 8-byte little-endian xxh3-64 digest per 64 KiB block
    block_elements: Optional[int]
    message: Optional[str]
    trace: Optional[List[Dict[str, Any]]]  # trace probes: one dict per op
    invariance: Optional[str]
    invariant: Optional[bool]
    variant_values: Optional[str]


#: Detail's fields are also the run-file columns a detail query reads.
DETAIL_COLUMNS: Tuple[str, ...] = Detail._fields


class StreamKey(NamedTuple):
    """A stream of one case key at one probe version."""

    case_key: str
    probe_version: str
    fingerprint: Optional[str]


class StreamWant(NamedTuple):
    """Runs to fetch for a stream: how many are wanted, and where they can be."""

    key: StreamKey
    want: int  # the first ``want`` runs (in run order) that produced it
    envs: Tuple[int, ...]  # the environments whose runs produced it
    first_run: int
    last_run: int


@dataclass
class Rows:
    """Everything the compare core reads."""

    runs: List[RunInfo]
    envs: List[Dict[str, Optional[str]]]  # every environment field; None is unset
    outcomes: List[Outcome]
    cases: Dict[Tuple[str, str], CaseRow]  # (case_key, probe_version) -> description
    details: Dict[Pick, Detail] = field(default_factory=dict)
    # the first runs, in run order
    stream_runs: Dict[StreamKey, List[int]] = field(default_factory=dict)
    skipped: List[Any] = field(default_factory=list)  # audit.store.location.Skipped
    notes: List[str] = field(default_factory=list)  # about the input (duplicates ignored)
    unread: int = 0  # runs whose file failed while its rows were read (named in skipped)

    @property
    def row_count(self) -> int:
        return sum(o.rows for o in self.outcomes)
