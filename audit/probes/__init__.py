"""The probe catalogue.  Importing this package registers every probe.

One module per family; each probe imports its library inside the function, so
importing the catalogue (to list it, or to check a glob) imports neither numpy nor torch.
"""

from __future__ import annotations

import importlib

#: Catalogue modules, imported in this order (the order of a run).
MODULES = (
    "python_random",
    "numpy_legacy",
    "numpy_generator",
    "pandas_sampling",
    "torch_rng",
    "torch_nn",
    "torch_ops",
    "numpy_ops",
    "torch_cuda",
    "invariance_generators",
    "invariance_ops",
    "invariance_data",
    "roundtrip",
    "torch_models",
)

for _name in MODULES:
    importlib.import_module(f"{__name__}.{_name}")
