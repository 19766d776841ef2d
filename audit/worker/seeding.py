"""Seeding that restores what it touched (hypothesis's ``deterministic_PRNG``), and the seeders.

Probes seed global generators (``random.seed``, ``np.random.seed``, ``torch.manual_seed``).
:func:`restored_global_state` saves every global generator of a library that is already
imported and puts it back afterwards, so no probe leaves state behind for the next one.

Each library says how to save and restore its global generators in one place: a
:class:`Seeder` given to :func:`register_seeder` (as hypothesis's ``register_random``).  A new
library registers its own below; nothing else in the worker names it.
Worker side: standard library only; numpy and torch are touched only if imported.
"""

from __future__ import annotations

import contextlib
import operator
import random  # noqa: F401  (always imported: its seeder always applies)
import sys
from dataclasses import dataclass
from typing import Any, Callable, Dict, Iterator, List, Tuple


def _always(library: Any) -> bool:
    return True


@dataclass(frozen=True)
class Seeder:
    """How to save and restore one library's global generator(s).

    Each callable gets the library's module (``sys.modules[library]``): a seeder is used only
    once its library is imported, and only while ``active`` says so (CUDA, once initialised).
    """

    name: str  # "numpy", "torch.cuda"
    library: str  # the module that must already be imported: "numpy", "torch"
    save: Callable[[Any], Any]
    restore: Callable[[Any, Any], None]
    active: Callable[[Any], bool] = _always


_SEEDERS: Dict[str, Seeder] = {}


def register_seeder(seeder: Seeder) -> None:
    """Add a library's seeder (in registration order); a second one under the same name is an
    error."""
    if seeder.name in _SEEDERS and _SEEDERS[seeder.name] != seeder:
        raise ValueError(f"a seeder named {seeder.name!r} is already registered")
    _SEEDERS[seeder.name] = seeder


def registered() -> List[Seeder]:
    """Every registered seeder, imported or not, in registration order."""
    return list(_SEEDERS.values())


def active() -> List[Tuple[Seeder, Any]]:
    """The seeders whose library is imported (and active), each with that library's module."""
    found = []
    for seeder in _SEEDERS.values():
        library = sys.modules.get(seeder.library)
        if library is not None and seeder.active(library):
            found.append((seeder, library))
    return found


@contextlib.contextmanager
def restored_global_state() -> Iterator[None]:
    """Run the block, then restore the global generators of every imported library."""
    saved = [(seeder, library, seeder.save(library)) for seeder, library in active()]
    try:
        yield
    finally:
        for seeder, library, state in saved:
            seeder.restore(library, state)


def by_names(
    name: str,
    library: str,
    save: str,
    restore: str,
    active: Callable[[Any], bool] = _always,
) -> Seeder:
    """A seeder made of three functions of the library's module, named by their dotted paths in
    it: ``by_names("numpy", "numpy", "random.get_state", "random.set_state")``."""
    get_save, get_restore = (operator.attrgetter(path) for path in (save, restore))
    return Seeder(
        name,
        library,
        lambda m: get_save(m)(),
        lambda m, state: get_restore(m)(state),
        active,
    )


def _cuda_ready(torch: Any) -> bool:
    cuda = getattr(torch, "cuda", None)
    return bool(cuda is not None and cuda.is_available() and cuda.is_initialized())


# --------------------------------------------------------------------------- the libraries

for _seeder in (
    by_names("random", "random", "getstate", "setstate"),
    by_names("numpy", "numpy", "random.get_state", "random.set_state"),
    by_names("torch", "torch", "get_rng_state", "set_rng_state"),
    by_names(
        "torch.cuda", "torch", "cuda.get_rng_state_all", "cuda.set_rng_state_all", _cuda_ready
    ),
):
    register_seeder(_seeder)
