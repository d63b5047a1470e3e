"""mlkit: the helper package behind the notebooks of the ML deployment teaching kit.

The notebooks show each technique in plain scikit-learn and pandas; mlkit holds what would
distract (data generators, parameter checks, plotting boilerplate, statistics engines) and
what later notebooks reuse.

Examples
--------
>>> import mlkit
>>> "finance-fraud" in mlkit.usecases.ids()
True
"""

from __future__ import annotations

from mlkit import paths, usecases
from mlkit.errors import DataError, MlkitError, ParameterError
from mlkit.parameters import check_parameters, record
from mlkit.userdata import load_data

__version__ = "0.1.0"

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
]
