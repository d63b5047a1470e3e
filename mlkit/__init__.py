"""mlkit: the helper package behind the notebooks of the ML deployment teaching kit.

The notebooks show each technique in plain scikit-learn and pandas; mlkit holds what would
distract (data generators, parameter checks, plotting boilerplate, statistics engines) and
what later notebooks reuse. Stage modules (``mlkit.datasets``, ``mlkit.training``,
``mlkit.evaluation``, ``mlkit.plots``, ...) load on first use, so ``import mlkit`` stays fast.

Examples
--------
>>> import mlkit
>>> "finance-fraud" in mlkit.usecases.ids()
True
>>> mlkit.datasets.load("healthcare-diagnosis", n=100).shape
(100, 32)
"""

from __future__ import annotations

import importlib
from typing import Any

from mlkit import paths, usecases
from mlkit.errors import DataError, MlkitError, ParameterError
from mlkit.parameters import check_parameters, record
from mlkit.userdata import load_data

__version__ = "0.1.0"

_SUBMODULES = (
    "batch",
    "cli",
    "cloud",
    "datasets",
    "evaluation",
    "fingerprint",
    "grid",
    "hybrid",
    "monitoring",
    "onnx_export",
    "packaging",
    "parameters",
    "plots",
    "registry",
    "report",
    "retraining",
    "serving",
    "student",
    "training",
    "userdata",
)

__all__ = [
    "__version__",
    "MlkitError",
    "ParameterError",
    "DataError",
    "check_parameters",
    "record",
    "load_data",
    "paths",
    "usecases",
    *_SUBMODULES,
]


def __getattr__(name: str) -> Any:
    """Import a stage module on first access (``mlkit.training``), PEP 562."""
    if name in _SUBMODULES:
        return importlib.import_module(f"mlkit.{name}")
    raise AttributeError(f"module 'mlkit' has no attribute {name!r}")
