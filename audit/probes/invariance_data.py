"""num_workers invariance: does a seeded DataLoader give the same epoch with 0, 1 or 2 workers?

The setting of torch's reproducibility notes: ``shuffle=True`` with a seeded ``generator=``,
and random augmentation inside ``__getitem__`` that draws from torch, numpy and Python's
``random``, with and without the documented ``worker_init_fn`` that seeds numpy and random
from ``torch.initial_seed()``.  The main process seeds all three global generators first, as
training scripts do.  Two questions, two probes (invariance parameter ``num_workers``):

- ``torch.utils.data.DataLoader:order``: the sample indices in the order the loader yields them;
- ``torch.utils.data.DataLoader:augmentation``: each sample's three augmentation draws.

A worker process must not hang the audit or outlive its case: every loader has a timeout,
``persistent_workers=False``, and is exhausted (which shuts its workers down) before the
probe returns.  Workers are forked; the audit worker points its protocol descriptor at
/dev/null in every forked child (see :class:`audit.worker.main.Channel`).
"""

from __future__ import annotations

import random
from typing import Any, Callable, Dict, List, Optional

from audit.probe_api import SEEDS, Unsupported, probe
from audit.probes.torch_rng import TORCH_MIN

#: Samples per epoch and per batch: 6 batches, so both of two workers serve several.
SAMPLES = 24
BATCH = 4
WORKERS = (0, 1, 2)

#: Seconds a loader waits for a batch from a worker before it raises (a hung worker is an error).
LOADER_TIMEOUT = 60.0

#: How workers are set up: no worker_init_fn, or the recipe of torch's reproducibility notes.
WORKER_INIT = ("none", "seed_numpy_random")


class AugmentedRange:
    """Sample ``i`` is ``(i, torch draw, numpy draw, random draw)``: an index and its
    augmentation."""

    def __len__(self) -> int:
        return SAMPLES

    def __getitem__(self, index: int) -> Any:
        import numpy as np
        import torch

        draws = [float(torch.rand(())), float(np.random.random_sample()), random.random()]
        return torch.tensor([float(index), *draws], dtype=torch.float64)


def seed_numpy_random(worker_id: int) -> None:
    """The worker_init_fn of torch's reproducibility notes."""
    import numpy as np
    import torch

    worker_seed = torch.initial_seed() % 2**32
    np.random.seed(worker_seed)
    random.seed(worker_seed)


def epoch(seed: int, num_workers: int, worker_init: str) -> Any:
    """One epoch of the loader as a (SAMPLES, 4) float64 tensor, in the order it was yielded."""
    import numpy as np
    import torch

    if num_workers and not hasattr(torch.multiprocessing, "get_context"):  # pragma: no cover
        raise Unsupported("torch.multiprocessing cannot start workers here")
    if seed < 0 or seed > 2**32 - 1:
        raise Unsupported(f"numpy.random.seed takes seeds in [0, 2**32-1], not {seed}")
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)
    gen = torch.Generator()
    gen.manual_seed(seed)
    init: Optional[Callable[[int], None]] = (
        seed_numpy_random if worker_init == "seed_numpy_random" else None
    )
    dataset: Any = AugmentedRange()  # a map-style dataset; typed as Dataset upstream
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, generator=gen, num_workers=num_workers,
        worker_init_fn=init, persistent_workers=False, timeout=LOADER_TIMEOUT if num_workers else 0,
    )
    batches: List[Any] = list(loader)  # exhausting the iterator shuts its workers down
    return torch.cat(batches)


_GRID = {"seed": SEEDS, "worker_init": WORKER_INIT, "num_workers": [list(WORKERS)]}
_KW: Dict[str, Any] = {"invariance": "num_workers", "library": "torch", "min_version": TORCH_MIN}


@probe("torch.utils.data.DataLoader", grid=_GRID, name="torch.utils.data.DataLoader:order", **_KW)
def loader_order(seed: int, worker_init: str, num_workers: int) -> Any:
    """The sample order of a shuffled, seeded DataLoader with 0, 1 and 2 workers."""
    import torch

    return epoch(seed, num_workers, worker_init)[:, 0].to(torch.int64)


@probe("torch.utils.data.DataLoader", grid=_GRID, name="torch.utils.data.DataLoader:augmentation", **_KW)
def loader_augmentation(seed: int, worker_init: str, num_workers: int) -> Any:
    """The augmentation drawn for each sample (torch, numpy, random), in sample order, per num_workers."""
    rows = epoch(seed, num_workers, worker_init)
    return rows[rows[:, 0].argsort()][:, 1:]
