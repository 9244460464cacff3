"""Certified fits reach the optimum: jaxpref (default float32, default tolerance) against an
independent SciPy optimiser of the same exact objective (tests/reference_optimum.py)."""

import warnings

import numpy as np
import pytest
from certified_settings import SETTINGS, setting

import jaxpref

#: jaxpref's objective must be within this of the reference optimum (nats, whole data set).
NATS = 0.01


@pytest.mark.parametrize("name", SETTINGS)
def test_certified_fit_reaches_the_reference_optimum(name):
    frame, options, problem = setting(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", jaxpref.IdentifiabilityWarning)
        fit = jaxpref.fit_attentiveness(frame, **options)
    reference, _ = problem.maximise()
    assert fit.converged and 0.0 <= fit.optimality_gap <= 1e-3
    assert fit.objective >= reference - NATS, (fit.objective, reference)
    # The reference is an optimiser too: a jaxpref fit far above it would mean the reference failed.
    assert fit.objective <= reference + NATS, (fit.objective, reference)


def test_all_b_reaches_the_closed_form_map():
    """All labels B: the MAP is eta = 0 (every label a coin flip) with mu at its prior mode 7/8."""
    frame, options, _ = setting("all labels B, two_point, mu prior")
    fit = jaxpref.fit_attentiveness(frame, **options)
    closed_form = len(frame) * np.log(0.5) + 7 * np.log(0.875) + np.log(0.125)
    assert fit.objective == pytest.approx(closed_form, abs=1e-6)
    assert fit.params["mu"] == pytest.approx(0.875, abs=1e-6)
