"""What training code draws through torch: dropout masks, weight init, distributions, data order.

These sit on top of the generators of :mod:`audit.probes.torch_rng`, but each adds its own
consumption pattern (dropout's bernoulli, orthogonal_'s QR, gamma's rejection loop, the
sampler's randperm), so a stream can change here while the generator did not.

Dropout and init also run on CUDA (via :func:`torch_probe`).  Init functions take
``generator=`` only in newer torch; the explicit-generator case is ``unsupported`` before.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Dict, List, Optional, Tuple

from audit.probe_api import SEEDS, Output, Unsupported, integers, probe, tuples
from audit.probes._inputs import torch_uniform
from audit.probes.torch_rng import GENERATORS, TORCH_MIN, seeded, state_after, torch_probe

_GLOBAL = ("global",)


# --- dropout -----------------------------------------------------------------------------

#: functional name -> input shape (dropout2d zeroes whole channels of (N, C, H, W)).
_DROPOUT = {"dropout": (1000,), "alpha_dropout": (1000,), "dropout2d": (4, 16, 5, 5)}


def _register_dropout(name: str, shape: Tuple[int, ...]) -> None:
    @torch_probe(f"torch.nn.functional.{name}", {"seed": SEEDS, "p": [0.3], "shape": [list(shape)]})
    def dropout(device: str, seed: int, p: float, shape: List[int]) -> Output:
        """F.<name>(x, p, training=True) with the global seed (it takes no generator)."""
        import torch

        seeded(seed, "global", device)
        x = torch_uniform(shape, 1, device=device)
        out = getattr(torch.nn.functional, name)(x, p=p, training=True)
        return Output(out, state_after(None, device))


for _name, _shape in _DROPOUT.items():
    _register_dropout(_name, _shape)


# --- nn.init -----------------------------------------------------------------------------

#: init function -> (keyword arguments, generator kinds to run).
_INIT: Dict[str, Tuple[Dict[str, Any], Tuple[str, ...]]] = {
    "uniform_": ({"a": -0.5, "b": 0.5}, GENERATORS),
    "normal_": ({"mean": 0.0, "std": 0.02}, GENERATORS),
    "xavier_uniform_": ({}, _GLOBAL),
    "xavier_normal_": ({}, _GLOBAL),
    "kaiming_uniform_": ({"a": 5**0.5}, _GLOBAL),
    "kaiming_normal_": ({"mode": "fan_out", "nonlinearity": "relu"}, _GLOBAL),
    "trunc_normal_": ({"std": 0.02}, _GLOBAL),
    "orthogonal_": ({}, GENERATORS),
}


def _init_fn(torch: Any, name: str, generator: Optional[Any]) -> Callable[..., Any]:
    fn = getattr(torch.nn.init, name)
    if generator is not None and "generator" not in inspect.signature(fn).parameters:
        raise Unsupported(f"torch {torch.__version__}: nn.init.{name} takes no generator=")
    return fn


#: Weight shapes: a toy layer and a small real one (256 x 256, where orthogonal_'s QR is
#: already threaded and splits by thread count); the large size panel adds the layer shapes
#: of real models, a 4x MLP's up projection included.
INIT_SHAPES = ([64, 32], [256, 256])
LARGE_INIT = {"shape": [[512, 512], [1024, 1024], [1024, 4096]]}
#: Where ``explore`` searches weight shapes (not part of the probe versions).
INIT_SEARCH = {"shape": tuples(integers(1, 1024), integers(1, 1024))}


def _register_init(name: str, kwargs: Dict[str, Any], generators: Tuple[str, ...]) -> None:
    grid = {"seed": SEEDS, "generator": generators, "shape": INIT_SHAPES, "kwargs": [kwargs]}

    @torch_probe(f"torch.nn.init.{name}", grid, sizes={"large": LARGE_INIT}, search=INIT_SEARCH)
    def init(device: str, seed: int, generator: str, shape: List[int], kwargs: Dict[str, Any]) -> Output:
        """nn.init.<name> of a (64, 32) and a (256, 256) weight: how layers get their first values."""
        import torch

        gen = seeded(seed, generator, device)
        fn = _init_fn(torch, name, gen)
        weight = torch.empty(shape, device=device)
        fn(weight, **kwargs, **({} if gen is None else {"generator": gen}))
        return Output(weight, state_after(gen, device))


for _name, (_kwargs, _gens) in _INIT.items():
    _register_init(_name, _kwargs, _gens)


# --- torch.distributions -----------------------------------------------------------------

def _distribution(torch: Any, name: str) -> Any:
    d = torch.distributions
    made = {
        "Normal": lambda: d.Normal(torch.tensor([0.0, 3.0]), torch.tensor([1.0, 0.5])),
        "Gamma": lambda: d.Gamma(torch.tensor([0.5, 2.0, 9.0]), torch.tensor([1.0, 1.0, 2.0])),
        "Beta": lambda: d.Beta(torch.tensor([0.5, 2.0]), torch.tensor([0.5, 5.0])),
        "Dirichlet": lambda: d.Dirichlet(torch.tensor([0.3, 1.0, 4.0])),
        "Categorical": lambda: d.Categorical(probs=torch.tensor([0.1, 0.2, 0.3, 0.4])),
        "MultivariateNormal": lambda: d.MultivariateNormal(
            torch.zeros(3), torch.tensor([[2.0, 0.5, 0.1], [0.5, 1.0, 0.2], [0.1, 0.2, 0.5]])),
    }
    return made[name]()


def _register_distribution(name: str) -> None:
    @probe(f"torch.distributions.{name}.sample", grid={"seed": SEEDS, "n": [500]},
           library="torch", min_version=TORCH_MIN)
    def sample(seed: int, n: int) -> Output:
        """<name>(...).sample((n,)) with the global seed (distributions take no generator)."""
        import torch

        torch.manual_seed(seed)
        out = _distribution(torch, name).sample((n,))
        return Output(out, torch.get_rng_state())


for _name in ("Normal", "Gamma", "Beta", "Dirichlet", "Categorical", "MultivariateNormal"):
    _register_distribution(_name)


# --- torch.utils.data --------------------------------------------------------------------

@probe("torch.utils.data.RandomSampler", grid={"seed": SEEDS, "generator": GENERATORS, "n": [1000]},
       library="torch", min_version=TORCH_MIN)
def random_sampler(seed: int, generator: str, n: int) -> Output:
    """The order RandomSampler yields; without a generator it seeds one from the global stream."""
    import torch

    gen = seeded(seed, generator, "cpu")
    order = list(torch.utils.data.RandomSampler(range(n), generator=gen))
    return Output(order, state_after(gen, "cpu"))


@probe("torch.utils.data.DataLoader", grid={"seed": SEEDS, "generator": GENERATORS, "n": [200]},
       library="torch", min_version=TORCH_MIN)
def data_loader(seed: int, generator: str, n: int) -> Output:
    """DataLoader(shuffle=True) batch order: what 'same seed, same epoch' promises."""
    import torch

    gen = seeded(seed, generator, "cpu")
    dataset: Any = torch.arange(n)  # a tensor is a sized sequence; typed as Dataset upstream
    loader = torch.utils.data.DataLoader(dataset, batch_size=16, shuffle=True, generator=gen)
    return Output(torch.cat(list(loader)), state_after(gen, "cpu"))


@probe("torch.utils.data.random_split", grid={"seed": SEEDS, "lengths": [[70, 20, 10]]},
       library="torch", min_version=TORCH_MIN)
def random_split(seed: int, lengths: List[int]) -> Output:
    """random_split's train/val/test indices, with the documented explicit generator."""
    import torch

    gen = torch.Generator()
    gen.manual_seed(seed)
    dataset: Any = range(sum(lengths))  # any sized sequence; typed as Dataset upstream
    parts: List[Any] = torch.utils.data.random_split(dataset, lengths, generator=gen)
    return Output([list(p.indices) for p in parts], gen.get_state())
