"""Model traces: small training steps recorded op by op (``kind="trace"``).

Each probe builds a small model, runs a training step (forward, backward, optimizer step)
and returns the trained parameters with the loss; the worker records every aten op on the
way (:mod:`audit.worker.trace`), so a run that diverges is located at its first differing
op, not only at the final weights.

* a transformer encoder block: embedding, self-attention, layer norm, MLP, dropout, AdamW;
* a small CNN: conv, batch norm, max pooling, SGD with momentum (two steps, so the momentum
  buffer is used); the convolutions have no bias, as usual before batch norm (a bias there
  gets a gradient that is zero up to rounding noise, which any change of order rewrites);
* an LSTM over a short sequence with a linear head, Adam;
* an input pipeline: a ``DataLoader`` with ``shuffle=True``, a seeded ``generator=``, and
  random augmentation inside ``__getitem__``, seeded as torch's reproducibility notes say
  (``torch.manual_seed``, ``random.seed``, ``worker_init_fn``, ``generator=``).

Where randomness comes from, on purpose: the *data* (token ids, images, targets, the
pipeline's base samples) comes from :mod:`audit.probes._inputs`, the same bits everywhere,
so an op is never blamed for a generator, and is made under ``untraced()`` (the trace lists
it by fingerprint where an op reads it); the *training* randomness a real run has
(weight init, dropout masks, the shuffle, the augmentation) comes from the case's seed
through ``torch.manual_seed`` (and ``random.seed``), as in a user's training script.

Sizes are small enough that the whole catalogue stays fast on two cores; each probe also
runs on CUDA when a device is present.
"""

from __future__ import annotations

import random
from typing import Any, Callable, List, Sequence

from audit.probe_api import SEEDS, traced, untraced
from audit.probes._inputs import torch_ties, torch_uniform
from audit.probes.torch_rng import torch_probe


def model_trace(
    probe_id: str, grid: Any, key: str = ""
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``@probe(kind="trace")`` once per device, the device bound as the ``device`` argument."""
    return torch_probe(probe_id, grid, key=key or None, kind="trace")


def _seed_everything(seed: int, device: str) -> None:
    """What a training script does first (torch's reproducibility notes)."""
    import torch

    torch.manual_seed(seed)
    random.seed(seed)
    if device == "cuda":
        torch.cuda.manual_seed_all(seed)


def _trained(model: Any, loss: Any) -> Any:
    """The step's result: every parameter after the step, then the loss, as one vector."""
    import torch

    with torch.no_grad():
        params = [p.detach().reshape(-1) for p in model.parameters()]
        return torch.cat(params + [loss.detach().reshape(1)])


# --- a transformer encoder block -----------------------------------------------------------

@model_trace("torch.nn.TransformerEncoderLayer",
             {"seed": SEEDS, "vocab": [256], "d_model": [64], "heads": [4], "batch": [8], "length": [32]})
def transformer_step(device: str, seed: int, vocab: int, d_model: int, heads: int, batch: int, length: int) -> Any:
    """One AdamW step of embedding -> encoder layer (attention, layer norm, MLP, dropout) -> head."""
    import torch

    _seed_everything(seed, device)  # init and dropout masks
    model = traced(torch.nn.Sequential(
        torch.nn.Embedding(vocab, d_model),
        torch.nn.TransformerEncoderLayer(d_model, heads, dim_feedforward=4 * d_model, dropout=0.1,
                                         batch_first=True),
        torch.nn.Linear(d_model, vocab),
    ).to(device))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with untraced():  # the data: made outside the trace, which lists it by fingerprint
        tokens = torch_ties(batch * length, seed, distinct=vocab, device=device).reshape(batch, length)
        targets = torch_ties(batch * length, seed + 1, distinct=vocab, device=device)
    logits = model(tokens)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, vocab), targets)
    loss.backward()
    optimizer.step()
    return _trained(model, loss)


# --- a small CNN ---------------------------------------------------------------------------

@model_trace("torch.nn.Conv2d", {"seed": SEEDS, "batch": [16], "size": [32], "steps": [2]},
             key="torch.nn.Conv2d:train")
def cnn_step(device: str, seed: int, batch: int, size: int, steps: int) -> Any:
    """SGD (momentum 0.9) steps of conv -> batch norm -> ReLU -> max pool -> conv -> pool -> linear."""
    import torch

    _seed_everything(seed, device)  # init
    nn = torch.nn
    model = traced(nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1, bias=False), nn.BatchNorm2d(32), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
        nn.Flatten(), nn.Linear(32, 10),
    ).to(device))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    with untraced():
        images = torch_uniform((batch, 3, size, size), seed, device=device)
        labels = torch_ties(batch, seed + 1, distinct=10, device=device)
    for _ in range(steps):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(images), labels)
        loss.backward()
        optimizer.step()
    return _trained(model, loss)


# --- an LSTM -------------------------------------------------------------------------------

@model_trace("torch.nn.LSTM", {"seed": SEEDS, "batch": [8], "length": [16], "features": [16], "hidden": [64]})
def lstm_step(device: str, seed: int, batch: int, length: int, features: int, hidden: int) -> Any:
    """One Adam step of an LSTM over a short sequence and a linear head on its last state."""
    import torch

    _seed_everything(seed, device)  # init
    model = traced(torch.nn.ModuleDict({
        "lstm": torch.nn.LSTM(features, hidden, batch_first=True),
        "head": torch.nn.Linear(hidden, 1),
    }).to(device))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    with untraced():
        x = torch_uniform((batch, length, features), seed, device=device)
        y = torch_uniform((batch, 1), seed + 1, device=device)
    out, _ = model["lstm"](x)
    loss = torch.nn.functional.mse_loss(model["head"](out[:, -1]), y)
    loss.backward()
    optimizer.step()
    return _trained(model, loss)


# --- an input pipeline ---------------------------------------------------------------------

def seed_worker(worker_id: int) -> None:
    """The ``worker_init_fn`` of torch's reproducibility notes: seed ``random`` per worker."""
    import torch

    random.seed(torch.initial_seed() % 2**32)


class AugmentedImages:
    """A map-style dataset whose ``__getitem__`` augments at random: a random crop, a
    horizontal flip on a coin toss from ``random``, and Gaussian noise from torch."""

    def __init__(self, base: Any, crop: int) -> None:
        self.base, self.crop = base, crop

    def __len__(self) -> int:
        return int(self.base.shape[0])

    def __getitem__(self, index: int) -> Any:
        import torch

        image = self.base[index]
        top, left = (int(v) for v in torch.randint(0, image.shape[-1] - self.crop + 1, (2,)))
        image = image[:, top:top + self.crop, left:left + self.crop]
        if random.random() < 0.5:
            image = image.flip(-1)
        return image + 0.05 * torch.randn(image.shape)


@model_trace("torch.utils.data.DataLoader", {"seed": SEEDS, "samples": [64], "batch": [16]},
             key="torch.utils.data.DataLoader:pipeline")
def pipeline(device: str, seed: int, samples: int, batch: int) -> Any:
    """One epoch of DataLoader(shuffle, generator=, worker_init_fn=) over augmented images."""
    import torch

    _seed_everything(seed, device)  # the augmentation inside __getitem__
    loader_generator = torch.Generator()
    loader_generator.manual_seed(seed)  # the shuffle
    with untraced():
        dataset: Any = AugmentedImages(torch_uniform((samples, 3, 32, 32), seed), crop=28)
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=0,
                                         worker_init_fn=seed_worker, generator=loader_generator)
    batches: List[Any] = [images.to(device) for images in loader]
    return torch.cat(_flatten(batches))


def _flatten(tensors: Sequence[Any]) -> List[Any]:
    return [t.reshape(-1) for t in tensors]
