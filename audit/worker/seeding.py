"""Seeding that restores what it touched (hypothesis's ``deterministic_PRNG``).

Probes seed global generators (``random.seed``, ``np.random.seed``, ``torch.manual_seed``).
:func:`restored_global_state` saves every global generator of a library that is already
imported and puts it back afterwards, so no probe leaves state behind for the next one.
Worker side: standard library only; numpy and torch are touched only if imported.
"""

from __future__ import annotations

import contextlib
import random
import sys
from typing import Any, Callable, Iterator, List, Tuple


def _savers() -> List[Tuple[Callable[[], Any], Callable[[Any], None]]]:
    savers: List[Tuple[Callable[[], Any], Callable[[Any], None]]] = [(random.getstate, random.setstate)]
    np = sys.modules.get("numpy")
    if np is not None:
        savers.append((np.random.get_state, np.random.set_state))
    torch = sys.modules.get("torch")
    if torch is not None:
        savers.append((torch.get_rng_state, torch.set_rng_state))
        cuda = getattr(torch, "cuda", None)
        if cuda is not None and cuda.is_available() and cuda.is_initialized():
            savers.append((cuda.get_rng_state_all, cuda.set_rng_state_all))
    return savers


@contextlib.contextmanager
def restored_global_state() -> Iterator[None]:
    """Run the block, then restore Python's, numpy's and torch's global generators."""
    saved = [(get(), put) for get, put in _savers()]
    try:
        yield
    finally:
        for state, put in saved:
            put(state)
