"""torch's generators on CPU and CUDA: the global generator and an explicit ``torch.Generator``.

Each probe body is written once and registered for both devices by :func:`torch_probe`
(keys ``torch.randn`` and ``torch.randn@cuda``).  Every probe returns the draw and the
generator's state after it: on CPU the mt19937 state (with the cached normal sample), on
CUDA the Philox seed and offset, which moves by a device-dependent amount per op.

Why these sizes: CPU ``randn``/``normal_`` of float32 switch to a vectorised Box-Muller
at 16 elements, whose result depends on the ATen dispatch level (AVX2/AVX-512 vs default);
sizes 5, 16, 17 straddle that switch.  On CUDA, large sizes change how many Philox
offsets each thread consumes.
"""

from __future__ import annotations

import functools
from typing import Any, Callable, Mapping, Optional, Sequence, Tuple

from audit.probe_api import SEEDS, Output, probe

#: The family reports group these probes under (read at registration; the decorators stay as
#: they are).
FAMILY = "torch RNG"

GENERATORS = ("global", "explicit")
DEVICES = ("cpu", "cuda")
TORCH_MIN = "2.0"


def torch_probe(
    probe_id: str,
    grid: Mapping[str, Sequence[Any]],
    *,
    devices: Sequence[str] = DEVICES,
    cpu_extra: Sequence[Mapping[str, Any]] = (),
    cuda_extra: Sequence[Mapping[str, Any]] = (),
    key: Optional[str] = None,
    **kwargs: Any,
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Register ``func(device=..., **params)`` once per device from one body.

    The registered function binds ``device``; ``functools.wraps`` keeps the body's source
    as the probe version.  Extra cases differ per device (CUDA gets the ~1e7 sizes).
    ``key`` names the registration (``torch.nn.Conv2d:train``; ``@cuda`` added on CUDA).
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        for device in devices:
            extra = cpu_extra if device == "cpu" else cuda_extra
            name = None if key is None else key + ("" if device == "cpu" else f"@{device}")
            probe(probe_id, grid=grid, library="torch", min_version=TORCH_MIN, device=device,
                  extra_cases=extra, name=name, **kwargs)(_bind(func, device))
        return func

    return decorator


def _bind(func: Callable[..., Any], device: str) -> Callable[..., Any]:
    @functools.wraps(func)
    def bound(**params: Any) -> Any:
        return func(device=device, **params)

    return bound


def seeded(seed: int, generator: str, device: str) -> Optional[Any]:
    """Seed the global generator (returns None) or make an explicit one (returns it)."""
    import torch

    if generator == "global":
        torch.manual_seed(seed)
        if device == "cuda":
            torch.cuda.manual_seed_all(seed)
        return None
    if generator != "explicit":
        raise ValueError(f"generator must be 'global' or 'explicit', not {generator!r}")
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    return gen


def state_after(gen: Optional[Any], device: str) -> Any:
    """The state of the generator that was drawn from."""
    import torch

    if gen is not None:
        return gen.get_state()
    return torch.cuda.get_rng_state() if device == "cuda" else torch.get_rng_state()


def _gen_kwargs(gen: Optional[Any]) -> dict:
    return {} if gen is None else {"generator": gen}


def _float_cases(sizes: Sequence[int], dtypes: Sequence[str]) -> Tuple[Mapping[str, Any], ...]:
    """Global-seed cases over sizes x dtypes, beyond the main grid."""
    return tuple({"seed": SEEDS, "generator": "global", "size": s, "dtype": d}
                 for s in sizes for d in dtypes)


_OTHER_DTYPES = ("float16", "bfloat16", "float64")
_FLOAT_GRID = {"seed": SEEDS, "generator": GENERATORS, "size": [5, 16, 17, 1000],
               "dtype": ["float32"]}
_CPU_FLOAT_EXTRA = _float_cases([1000], _OTHER_DTYPES) + _float_cases([1_000_000], ["float32"])
_CUDA_FLOAT_EXTRA = _float_cases([1000], _OTHER_DTYPES) + _float_cases([10_000_000], ["float32"])


@torch_probe("torch.randn", _FLOAT_GRID, cpu_extra=_CPU_FLOAT_EXTRA, cuda_extra=_CUDA_FLOAT_EXTRA)
def torch_randn(device: str, seed: int, generator: str, size: int, dtype: str) -> Output:
    """torch.randn(size): standard normals, the stream most training code starts from."""
    import torch

    gen = seeded(seed, generator, device)
    out = torch.randn(size, dtype=getattr(torch, dtype), device=device, **_gen_kwargs(gen))
    return Output(out, state_after(gen, device))


_RAND_EXTRA = _float_cases([1000], ["bfloat16", "float64"])


@torch_probe("torch.rand", {"seed": SEEDS, "generator": GENERATORS, "size": [1000], "dtype": ["float32"]},
             cpu_extra=_RAND_EXTRA, cuda_extra=_RAND_EXTRA)
def torch_rand(device: str, seed: int, generator: str, size: int, dtype: str) -> Output:
    """torch.rand(size): uniforms in [0, 1)."""
    import torch

    gen = seeded(seed, generator, device)
    out = torch.rand(size, dtype=getattr(torch, dtype), device=device, **_gen_kwargs(gen))
    return Output(out, state_after(gen, device))


@torch_probe("torch.randint", {"seed": SEEDS, "generator": GENERATORS, "high": [10, 2**40], "size": [1000]})
def torch_randint(device: str, seed: int, generator: str, high: int, size: int) -> Output:
    """torch.randint(0, high): small and 64-bit ranges take different paths."""
    import torch

    gen = seeded(seed, generator, device)
    out = torch.randint(0, high, (size,), device=device, **_gen_kwargs(gen))
    return Output(out, state_after(gen, device))


@torch_probe("torch.randperm", {"seed": SEEDS, "generator": GENERATORS, "n": [10, 100_000]})
def torch_randperm(device: str, seed: int, generator: str, n: int) -> Output:
    """torch.randperm(n): the shuffle behind data loaders; large n switches algorithm."""
    import torch

    gen = seeded(seed, generator, device)
    out = torch.randperm(n, device=device, **_gen_kwargs(gen))
    return Output(out, state_after(gen, device))


#: In-place distributions of Tensor: method -> positional arguments.
_INPLACE = {
    "normal_": (0.5, 2.0),
    "uniform_": (-2.0, 3.0),
    "exponential_": (1.5,),
    "geometric_": (0.3,),
    "cauchy_": (0.0, 1.0),
    "log_normal_": (0.0, 0.5),
}


def _register_inplace(method: str, args: Tuple[float, ...]) -> None:
    grid = {"seed": SEEDS, "generator": GENERATORS, "size": [1000], "args": [list(args)]}
    # normal_ shares randn's vectorised path, which starts at 16 elements
    extra = ([{"seed": SEEDS, "generator": "global", "size": 17, "args": list(args)}]
             if method == "normal_" else [])

    @torch_probe(f"torch.Tensor.{method}", grid, cpu_extra=extra, cuda_extra=extra)
    def inplace(device: str, seed: int, generator: str, size: int, args: Sequence[float]) -> Output:
        """Tensor.<method>(*args) on a float32 tensor: each distribution has its own kernel."""
        import torch

        gen = seeded(seed, generator, device)
        out = torch.empty(size, device=device)
        getattr(out, method)(*args, **_gen_kwargs(gen))
        return Output(out, state_after(gen, device))


for _method, _args in _INPLACE.items():
    _register_inplace(_method, _args)


@torch_probe("torch.bernoulli", {"seed": SEEDS, "generator": GENERATORS, "p": ["scalar", "tensor"]})
def torch_bernoulli(device: str, seed: int, generator: str, p: str) -> Output:
    """Bernoulli draws with one probability (bernoulli_(0.3)) or one per element."""
    import torch

    gen = seeded(seed, generator, device)
    if p == "scalar":
        out = torch.empty(1000, device=device).bernoulli_(0.3, **_gen_kwargs(gen))
    else:
        probs = torch.linspace(0.0, 1.0, 1000, device=device)
        out = torch.bernoulli(probs, **_gen_kwargs(gen))
    return Output(out, state_after(gen, device))


#: (num_samples, replacement) per multinomial mode.
_MULTINOMIAL = {"one": (1, False), "several": (20, False), "replacement": (500, True)}


@torch_probe("torch.multinomial", {"seed": SEEDS, "generator": GENERATORS, "mode": list(_MULTINOMIAL)})
def torch_multinomial(device: str, seed: int, generator: str, mode: str) -> Output:
    """torch.multinomial from 3 rows of 100 weights, with and without replacement."""
    import torch

    num_samples, replacement = _MULTINOMIAL[mode]
    gen = seeded(seed, generator, device)
    weights = torch.arange(1, 301, dtype=torch.float32, device=device).reshape(3, 100) % 17 + 1
    out = torch.multinomial(weights, num_samples, replacement, **_gen_kwargs(gen))
    return Output(out, state_after(gen, device))


@torch_probe("torch.poisson", {"seed": SEEDS, "generator": GENERATORS, "rate": [0.5, 30.0]})
def torch_poisson(device: str, seed: int, generator: str, rate: float) -> Output:
    """torch.poisson: small rates use inversion, large ones rejection sampling."""
    import torch

    gen = seeded(seed, generator, device)
    out = torch.poisson(torch.full((1000,), rate, device=device), **_gen_kwargs(gen))
    return Output(out, state_after(gen, device))
