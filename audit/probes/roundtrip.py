"""RNG state round-trips: does a saved and restored generator continue the same stream?

Checkpoints save generator states (``torch.get_rng_state``, ``bit_generator.state``, a
pickled ``Generator``) and resume from them; evaluation code wraps draws in
``torch.random.fork_rng`` so training continues untouched.  Each probe here seeds a
generator, draws a head, then, by the value of ``restore``, saves the state, draws junk
(which the restore must undo) and restores it, then draws a tail.  The result is the head
and the tail; ``restore="none"`` (no junk, no restore) is the reference, so any restore
that loses state (a cached normal, a buffered 32-bit half, a spawn counter) makes the case
``variant`` with ``varies_with="restore"``.

The head ends on an odd number of normals or of 32-bit halves on purpose: that is when a
generator holds a value beyond its core state.  Pickling happens inside the probe (it tests
the user's recipe); nothing the audit stores is ever pickled.  Keys are ``<API>:restore``.
"""

from __future__ import annotations

import copy
import io
import json
import pickle
import random
from typing import Any, Callable, Dict, List, Tuple

from audit.probe_api import SEEDS, Output, Unsupported, probe
from audit.probes.numpy_generator import BIT_GENERATORS, generator
from audit.probes.numpy_legacy import SEED_MAX
from audit.probes.torch_rng import TORCH_MIN, seeded, state_after

_TORCH: Dict[str, Any] = {"invariance": "restore", "library": "torch", "min_version": TORCH_MIN}
_NP: Dict[str, Any] = {"invariance": "restore", "library": "numpy", "min_version": "1.19"}


def copied(obj: Any, how: str) -> Any:
    """A pickle round trip (as a checkpoint does it) or a deep copy; Unsupported where the
    installed library cannot pickle or copy the object at all."""
    try:
        return pickle.loads(pickle.dumps(obj)) if how == "pickle" else copy.deepcopy(obj)
    except (TypeError, pickle.PicklingError) as exc:
        raise Unsupported(f"cannot {how} a {type(obj).__name__}: {exc}") from None


def round_trip(rng: Any, restore: str, draws: Callable[[Any], Any], get_set: str,
               get: Callable[[Any], Any], put: Callable[[Any, Any], Any]) -> Any:
    """The generator the stream continues from after ``restore``: the same one with its state
    saved (``get``), junk drawn and the state put back (``put``) when ``restore`` is
    ``get_set``; a pickled or deep-copied twin, the original drawing junk meanwhile; or the
    original untouched for ``none``."""
    if restore == get_set:
        state = get(rng)
        draws(rng)
        put(rng, state)
    elif restore in ("pickle", "deepcopy"):
        twin = copied(rng, restore)
        draws(rng)
        return twin
    return rng


# --- torch ---------------------------------------------------------------------------------

def torch_draws(torch: Any, gen: Any = None) -> Any:
    """Normals (5: the scalar path, with a cached one; 20: the vectorised path), uniforms,
    64-bit integers, as one float64 tensor (every value converts exactly)."""
    kw = {} if gen is None else {"generator": gen}
    parts = [torch.randn(5, **kw), torch.randn(20, **kw), torch.rand(3, **kw),
             torch.randint(0, 2**40, (3,), **kw), torch.empty(7).normal_(**kw)]
    return torch.cat([p.to(torch.float64) for p in parts])


def _saved_and_loaded(torch: Any, state: Any) -> Any:
    """``torch.save`` then ``torch.load`` of a state tensor, through memory."""
    buffer = io.BytesIO()
    torch.save(state, buffer)
    buffer.seek(0)
    return torch.load(buffer)


@probe("torch.set_rng_state", grid={"seed": SEEDS, "restore": [["none", "get_set", "torch_save"]]},
       name="torch.set_rng_state:restore", **_TORCH)
def torch_global_state(seed: int, restore: str) -> Output:
    """torch.get_rng_state / set_rng_state (also through torch.save) around junk draws."""
    import torch

    torch.manual_seed(seed)
    head = torch_draws(torch)
    if restore != "none":
        state = torch.get_rng_state()
        if restore == "torch_save":
            state = _saved_and_loaded(torch, state)
        torch_draws(torch)
        torch.set_rng_state(state)
    return Output(torch.cat([head, torch_draws(torch)]), torch.get_rng_state())


@probe("torch.random.fork_rng", grid={"seed": SEEDS, "restore": [["none", "fork_rng"]]},
       name="torch.random.fork_rng:restore", **_TORCH)
def torch_fork_rng(seed: int, restore: str) -> Output:
    """Junk draws inside ``with torch.random.fork_rng():`` must leave the global stream alone."""
    import torch

    torch.manual_seed(seed)
    head = torch_draws(torch)
    if restore == "fork_rng":
        with torch.random.fork_rng():
            torch_draws(torch)
    return Output(torch.cat([head, torch_draws(torch)]), torch.get_rng_state())


@probe("torch.Generator.set_state",
       grid={"seed": SEEDS, "restore": [["none", "get_set", "new_generator"], ["none", "pickle", "deepcopy"]]},
       name="torch.Generator.set_state:restore", **_TORCH)
def torch_generator_state(seed: int, restore: str) -> Output:
    """An explicit generator's state: get_state/set_state, into a new Generator, pickled, deep-copied."""
    import torch

    gen: Any = seeded(seed, "explicit", "cpu")
    head = torch_draws(torch, gen)
    tail_gen = gen
    if restore in ("get_set", "new_generator"):
        state = gen.get_state()
        if restore == "new_generator":
            tail_gen = torch.Generator()
        torch_draws(torch, gen)
        tail_gen.set_state(state)
    elif restore in ("pickle", "deepcopy"):
        tail_gen = copied(gen, restore)
        torch_draws(torch, gen)
    return Output(torch.cat([head, torch_draws(torch, tail_gen)]), state_after(tail_gen, "cpu"))


# --- numpy ---------------------------------------------------------------------------------

def generator_draws(rng: Any) -> Any:
    """Normals, an odd number of float32 (a buffered 32-bit half), small integers, doubles."""
    import numpy as np

    parts = [rng.standard_normal(5), rng.random(3, dtype=np.float32).astype(np.float64),
             rng.integers(0, 100, size=5, dtype=np.uint8).astype(np.float64), rng.random(4)]
    return np.concatenate(parts)


def _json_state(state: Any) -> Any:
    """The state through JSON, arrays as lists: how a checkpoint written as JSON carries it."""
    return json.loads(json.dumps(state, default=lambda a: a.tolist()))


def _generator_grid(*restores: str) -> Dict[str, Any]:
    """Every bit generator, each case comparing the stream without a round trip and with these."""
    return {"seed": SEEDS, "bitgen": BIT_GENERATORS, "restore": [["none", *restores]]}


def _started(bitgen: str, seed: int) -> Tuple[Any, Any, Any]:
    """numpy, a seeded Generator, and its first draws (before any round trip)."""
    import numpy as np

    rng = generator(bitgen, seed)
    return np, rng, generator_draws(rng)


@probe("numpy.random.BitGenerator.state", grid=_generator_grid("state_dict", "state_json"),
       name="numpy.random.BitGenerator.state:restore", **_NP)
def bit_generator_state(seed: int, bitgen: str, restore: str) -> Output:
    """``bit_generator.state`` saved, junk drawn, the state assigned back (as a dict, via JSON)."""
    np, rng, head = _started(bitgen, seed)
    if restore != "none":
        state = rng.bit_generator.state
        state = _json_state(state) if restore == "state_json" else copy.deepcopy(state)
        generator_draws(rng)
        rng.bit_generator.state = state
    return Output(np.concatenate([head, generator_draws(rng)]), rng.bit_generator.state)


@probe("numpy.random.Generator", grid=_generator_grid("pickle", "deepcopy"), name="numpy.random.Generator:restore",
       **_NP)
def generator_pickle(seed: int, bitgen: str, restore: str) -> Output:
    """A Generator pickled (or deep-copied) mid-stream continues the stream of the original."""
    np, rng, head = _started(bitgen, seed)
    tail_rng = rng
    if restore != "none":
        tail_rng = copied(rng, restore)
        generator_draws(rng)
    return Output(np.concatenate([head, generator_draws(tail_rng)]), tail_rng.bit_generator.state)


def legacy_draws(rng: Any) -> Any:
    """Legacy normals (an odd number: the second of a pair is cached), doubles, integers."""
    import numpy as np

    return np.concatenate([rng.randn(5), rng.random_sample(3),
                           rng.randint(0, 1000, size=3).astype(np.float64)])


def _legacy_seeded(seed: int) -> Any:
    import numpy as np

    if not 0 <= seed <= SEED_MAX:
        raise Unsupported(f"numpy.random.seed takes seeds in [0, {SEED_MAX}], not {seed}")
    np.random.seed(seed)
    return np


@probe("numpy.random.set_state", grid={"seed": SEEDS, "restore": [["none", "get_set_state", "get_set_state_dict"]]},
       name="numpy.random.set_state:restore", **_NP)
def legacy_global_state(seed: int, restore: str) -> Output:
    """np.random.get_state() (tuple, or dict with legacy=False) and set_state around junk draws."""
    np = _legacy_seeded(seed)
    head = legacy_draws(np.random)
    if restore != "none":
        state = np.random.get_state(legacy=restore != "get_set_state_dict")
        legacy_draws(np.random)
        np.random.set_state(state)
    return Output(np.concatenate([head, legacy_draws(np.random)]), np.random.get_state())


@probe("numpy.random.RandomState", grid={"seed": SEEDS, "restore": [["none", "get_set_state", "pickle", "deepcopy"]]},
       name="numpy.random.RandomState:restore", **_NP)
def random_state_restore(seed: int, restore: str) -> Output:
    """A RandomState's get_state/set_state, pickled, deep-copied mid-stream."""
    np = _legacy_seeded(seed)
    rng = np.random.RandomState(seed)
    head = legacy_draws(rng)
    tail_rng = round_trip(rng, restore, legacy_draws, "get_set_state", lambda r: r.get_state(),
                          lambda r, state: r.set_state(state))
    return Output(np.concatenate([head, legacy_draws(tail_rng)]), tail_rng.get_state())


# --- SeedSequence.spawn ----------------------------------------------------------------------

def _children(seed: int, restore: str) -> List[Any]:
    """Three child SeedSequences of ``SeedSequence(seed)``, made the way ``restore`` says."""
    import numpy as np

    if seed < 0:
        raise Unsupported(f"SeedSequence takes non-negative seeds, not {seed}")
    ss = np.random.SeedSequence(seed)  # what every bit generator seeded with ``seed`` holds
    if restore == "spawn":
        return list(ss.spawn(3))
    if restore == "spawn_key":
        return [np.random.SeedSequence(seed, spawn_key=(i,)) for i in range(3)]
    if restore == "pickle_then_spawn":  # a checkpointed parent must not hand out child 0 again
        first = ss.spawn(1)
        return first + list(copied(ss, "pickle").spawn(2))
    raise ValueError(f"unknown restore {restore!r}")


@probe("numpy.random.SeedSequence.spawn",
       grid={"seed": SEEDS, "restore": [["spawn", "spawn_key", "pickle_then_spawn"], ["spawn", "generator_spawn"]]},
       name="numpy.random.SeedSequence.spawn:restore", **_NP)
def seed_sequence_spawn(seed: int, restore: str) -> Any:
    """Children of SeedSequence(seed) by spawn(3), rebuilt from spawn keys, spawned across a
    pickle of the parent, or via Generator.spawn (numpy >= 1.25): 8 raw words each."""
    import numpy as np

    if restore == "generator_spawn":
        rng = generator("PCG64", seed)
        spawn: Callable[[int], Any] = getattr(rng, "spawn", None) or _no_generator_spawn(np)
        return np.concatenate([child.bit_generator.random_raw(8) for child in spawn(3)])
    return np.concatenate([np.random.PCG64(child).random_raw(8) for child in _children(seed, restore)])


def _no_generator_spawn(np: Any) -> Callable[[int], Any]:
    raise Unsupported(f"numpy {np.__version__} has no Generator.spawn (numpy >= 1.25)")


# --- Python's random ------------------------------------------------------------------------

def python_draws(rng: Any) -> List[float]:
    """gauss caches the second value of a pair (in getstate's third item); random does not."""
    return [rng.gauss(0.0, 1.0) for _ in range(3)] + [rng.random() for _ in range(3)]


@probe("random.setstate", grid={"seed": SEEDS, "restore": [["none", "getstate_setstate", "pickle"]]},
       name="random.setstate:restore", invariance="restore")
def python_random_state(seed: int, restore: str) -> Output:
    """random.Random's getstate/setstate and a pickle of the instance, mid-stream."""
    rng = random.Random(seed)
    head = python_draws(rng)
    tail_rng = round_trip(rng, restore, python_draws, "getstate_setstate", lambda r: r.getstate(),
                          lambda r, state: r.setstate(state))
    return Output(head + python_draws(tail_rng), tail_rng.getstate())
