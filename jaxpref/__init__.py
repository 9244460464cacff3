"""jaxpref: users' attentiveness in comparison-mode preference data, estimated by EM in JAX.

Follows Cai & Li, "Users as Annotators: LLM Preference Learning from Comparison Mode"
(arXiv 2510.13830). See MODEL.md in the repository for the model.
"""

from jaxpref.compare import compare
from jaxpref.data import DataError, PreferenceData, UserCounts, load_counts, load_preferences
from jaxpref.estimator import AttentivenessEM, AttentivenessFit, IdentifiabilityWarning, fit_attentiveness
from jaxpref.posterior import filter_labels, select_users
from jaxpref.simulate import simulate
from jaxpref.streaming import stream_counts

__version__ = "0.1.0"

__all__ = [
    "AttentivenessEM",
    "AttentivenessFit",
    "DataError",
    "compare",
    "IdentifiabilityWarning",
    "PreferenceData",
    "UserCounts",
    "filter_labels",
    "fit_attentiveness",
    "load_counts",
    "load_preferences",
    "select_users",
    "simulate",
    "stream_counts",
]
