"""jaxpref: users' attentiveness in comparison-mode preference data, estimated by EM in JAX.

Follows Cai & Li, "Users as Annotators: LLM Preference Learning from Comparison Mode"
(arXiv 2510.13830). The README describes the model.

Names are imported on first use (module ``__getattr__``), so ``import jaxpref`` and the command
line's start-up do not load JAX, pandas or SciPy until something needs them.
"""

import importlib
import sys
import types
from typing import Any

__version__ = "0.1.0"

#: Public name -> module that defines it.
_EXPORTS = {
    "AttentivenessEM": "jaxpref.estimator",
    "AttentivenessFit": "jaxpref.estimator",
    "DataError": "jaxpref.errors",
    "DegenerateDataWarning": "jaxpref.errors",
    "FitOptions": "jaxpref.options",
    "compare": "jaxpref.bayes.compare",
    "IdentifiabilityWarning": "jaxpref.errors",
    "PreferenceData": "jaxpref.io.data",
    "UserCounts": "jaxpref.io.data",
    "filter_labels": "jaxpref.core.posterior",
    "fit_bayes": "jaxpref.bayes.model",
    "fit_attentiveness": "jaxpref.estimator",
    "load_counts": "jaxpref.io.data",
    "load_preferences": "jaxpref.io.data",
    "select_users": "jaxpref.core.posterior",
    "simulate": "jaxpref.simulate",
    "stream_counts": "jaxpref.scale.streaming",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'jaxpref' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))


class _Package(types.ModuleType):
    """``jaxpref.simulate`` is a function named like its module. Importing the module binds its name
    on the package; the function must keep the name, as when it was imported eagerly, whichever is
    imported first."""

    def __setattr__(self, name: str, value: Any) -> None:
        if isinstance(value, types.ModuleType) and _EXPORTS.get(name) == f"{__name__}.{name}":
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
