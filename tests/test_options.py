"""FitOptions: every option checked once, on construction, naming the argument; mu resolved against
the data's groups; importable without JAX (the command line checks options before JAX loads)."""

import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest

from jaxpref.errors import DataError
from jaxpref.options import PAPER_MU_PRIOR, FitOptions


@pytest.mark.parametrize(
    "options, message",
    [
        ({"family": "cauchy"}, "family='cauchy'"),
        ({"family": "beta", "support": (0.1, 0.9)}, "support="),
        ({"support": (0.9, 0.1)}, "support="),
        ({"num_grid": 1}, "num_grid="),
        ({"num_restarts": 0}, "num_restarts="),
        ({"max_iter": 2.5}, "max_iter="),
        ({"tol": -1}, "tol="),
        ({"gap_tol": float("nan")}, "gap_tol="),
        ({"threshold": 1.5}, "threshold="),
        ({"seed": 2**70}, "seed="),
        ({"seed": True}, "seed="),
        ({"dtype": "float16"}, "dtype="),
        ({"method": "newton"}, "method="),
        ({"mu": "maybe"}, "mu='maybe'"),
        ({"mu": 0.4}, "mu=0.4"),
        ({"mu": {"a": 1.2}}, "mu="),
        ({"mu": 0.7, "mu_prior": (8, 2)}, "mu_prior="),
        ({"mu": "free", "mu_prior": (8, 2)}, "mu_prior="),
        ({"mu_prior": (8,)}, "mu_prior="),
        ({"user_column": 3}, "user_column="),
    ],
)
def test_bad_options_are_refused_on_construction(options, message):
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        FitOptions(**options)


def test_options_are_normalised_and_replace_checks_again():
    options = FitOptions(support=[0, 1], mu_prior=[8, 2], num_restarts=np.int64(3))
    assert options.support == (0.0, 1.0) and options.mu_prior == (8.0, 2.0) and options.num_restarts == 3
    assert options.replace(family="beta", support=None).family == "beta"
    with pytest.raises(DataError, match="num_grid="):
        options.replace(num_grid=0)


def data(groups=None, p=None):
    return SimpleNamespace(p=p, group_ids=None if groups is None else np.asarray(groups),
                           num_groups=1 if groups is None else len(groups))


def test_mu_resolution_against_the_data():
    assert FitOptions().resolve_mu(data()).mode == "prior"
    assert FitOptions().resolve_mu(data()).prior == PAPER_MU_PRIOR
    assert FitOptions(mu="free").resolve_mu(data(["a", "b"])).start.shape == (2,)
    known = FitOptions(mu={"b": 0.9, "a": 0.6}).resolve_mu(data(["a", "b"]))
    assert known.mode == "known" and known.start.tolist() == [0.6, 0.9]
    # The command line's "0=0.6" names the numeric group 0.
    assert FitOptions(mu={"0": 0.6, "1": 0.8}).resolve_mu(data([0, 1])).start.tolist() == [0.6, 0.8]
    assert FitOptions().resolve_mu(data(p=np.ones(3))).mode == "per_label"
    for options, frame, message in [
        (FitOptions(mu={"c": 0.6}), data(["a", "b"]), "not a group"),
        (FitOptions(mu={"a": 0.6}), data(["a", "b"]), "no value for group"),
        (FitOptions(mu={"a": 0.6}), data(), "no group column"),
        (FitOptions(mu=[0.6, 0.7, 0.8]), data(["a", "b"]), "3 values"),
        (FitOptions(mu=0.7), data(p=np.ones(3)), "per-label p"),
    ]:
        with pytest.raises(DataError, match=message):
            options.resolve_mu(frame)


def test_options_import_no_jax():
    code = "import sys, jaxpref.options; jaxpref.options.FitOptions(family='beta'); print('jax' in sys.modules)"
    completed = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert completed.stdout.strip() == "False"
