"""Probes of your own model: run them with

    python -m audit run --probes-from examples/my_probes.py
    python -m audit sweep --axis threads=1,2 --probes-from examples/my_probes.py

A probe is a function decorated with ``@probe``: it takes its case's parameters as keyword
arguments and returns what to fingerprint.  ``kind="trace"`` also records every aten op
the body runs (forward, backward, optimizer step), so ``compare`` can name the first op
whose output differs between two runs.  Import torch inside the function: listing the
probes then needs no torch.
"""

from __future__ import annotations

from typing import Any

from audit.probe_api import SEEDS, probe, traced, untraced


def tiny_classifier(torch: Any, width: int) -> Any:
    """The model under audit: any torch.nn.Module of yours."""
    return torch.nn.Sequential(
        torch.nn.Linear(32, width),
        torch.nn.LayerNorm(width),
        torch.nn.GELU(),
        torch.nn.Linear(width, 4),
    )


@probe("myproject.train_step", grid={"seed": SEEDS, "width": [64]}, library="torch", min_version="2.0",
       kind="trace")
def train_step(seed: int, width: int) -> Any:
    """One AdamW step of the classifier on a fixed batch; returns the weights after it."""
    import torch

    torch.manual_seed(seed)  # weight init, as in the training script
    model = traced(tiny_classifier(torch, width))  # ops are recorded with their module path
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    with untraced():  # the data: made outside the trace, listed by fingerprint where read
        x = torch.linspace(-2, 2, 64 * 32).reshape(64, 32)
        y = torch.arange(64) % 4
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    optimizer.step()
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


@probe("myproject.predict", grid={"seed": SEEDS, "batch": [1, 64]}, library="torch", min_version="2.0",
       kind="op")
def predict(seed: int, batch: int) -> Any:
    """Inference on a batch: does batch size or the machine change the logits?"""
    import torch

    torch.manual_seed(seed)
    model = tiny_classifier(torch, 64).eval()
    x = torch.linspace(-2, 2, 64 * 32).reshape(64, 32)[:batch]
    with torch.no_grad():
        return model(x)
