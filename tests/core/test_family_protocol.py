"""The family protocol: a family is one module and one registry line, and nothing else names one.

A new family (three fixed nodes with free weights) registered here, and nowhere else, is fitted,
certified, reported and simulated by the unchanged engine; its optimum matches an independent
NumPy EM run to convergence. A scan of the package checks that no module outside the families
dispatches on a family's name.
"""

import dataclasses
import re
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd
import pytest

import jaxpref
from jaxpref.core import families
from jaxpref.core.families.base import EtaDistribution, Family, FamilyParams
from jaxpref.simulate import eta_distribution, sample_eta

NODES = (0.0, 0.5, 1.0)
MU = 0.8


class ThreePoint(Family):
    """Free weights on the fixed nodes 0, 1/2 and 1 (only `init` and `truth` are its own)."""

    name = "three_point"

    @classmethod
    def create(cls, num_grid=64, support=None):
        return cls(num_nodes=len(NODES))

    def init(self, key, dtype=jnp.float32):
        log_weights = jnp.full((3,), -jnp.log(3.0), dtype) if key is None else jax.nn.log_softmax(
            jax.random.normal(key, (3,), dtype))
        return FamilyParams(jnp.asarray(NODES, dtype), log_weights, jnp.ones((2,), dtype))

    @classmethod
    def truth(cls, *, weights=(0.3, 0.3, 0.4), **_):
        return EtaDistribution(cls.name, NODES, tuple(weights))


@pytest.fixture
def three_point(monkeypatch):
    monkeypatch.setitem(families.REGISTRY, "three_point", families.FamilyEntry(f"{__name__}:ThreePoint"))


def numpy_weights_em(k, n, num_iter=20000):
    """Plain NumPy EM for the weights on fixed nodes with a known mu (the reference)."""
    q = 0.5 + np.asarray(NODES) * (MU - 0.5)
    log_table = k[:, None] * np.log(q) + (n - k)[:, None] * np.log1p(-q)
    weights = np.full(3, 1.0 / 3.0)
    for _ in range(num_iter):
        joint = np.exp(log_table - log_table.max(axis=1, keepdims=True)) * weights
        weights = (joint / joint.sum(axis=1, keepdims=True)).mean(axis=0)
    joint = log_table + np.log(weights)
    top = joint.max(axis=1)
    return weights, float(np.sum(top + np.log(np.exp(joint - top[:, None]).sum(axis=1))))


def test_a_family_registered_in_one_line_is_fitted_certified_and_reported(three_point):
    rng = np.random.default_rng(0)
    eta = rng.choice(NODES, 400, p=[0.3, 0.3, 0.4])
    n = np.full(400, 12)
    k = rng.binomial(n, 0.5 + eta * (MU - 0.5))
    frame = pd.DataFrame({"user": np.repeat(np.arange(400), 12),
                          "label": np.concatenate([np.r_[np.ones(a), np.zeros(12 - a)] for a in k])})
    fit = jaxpref.fit_attentiveness(frame, family="three_point", mu=MU, dtype="float64")
    weights, loglik = numpy_weights_em(k, n)
    assert fit.converged and fit.optimality_gap <= 1e-3
    assert fit.loglik == pytest.approx(loglik, abs=1e-3)
    np.testing.assert_allclose(fit.params["weights"], weights, atol=2e-3)
    assert fit.params["support"] is None and fit.params["alpha"] is None
    assert set(fit.standard_errors) == {"weight[0]", "weight[1]"}
    rows = fit.config.family.table_rows(fit.params)
    assert [label for label, _, _ in rows] == ["weight at eta=0.00", "weight at eta=0.50", "weight at eta=1.00"]


def test_a_registered_family_simulates_from_its_truth(three_point):
    distribution = eta_distribution("three_point", weights=(0.0, 1.0, 0.0))
    draws = np.asarray(sample_eta(jax.random.key(0), 50, distribution))
    assert np.all(draws == 0.5)


def test_no_module_outside_the_families_dispatches_on_a_family_name():
    package = Path(jaxpref.__file__).parent
    names = "|".join(families.REGISTRY)
    branch = re.compile(rf"""(==|!=|\bin)\s*\(?\s*["']({names})["']""")
    offenders = [
        f"{path.relative_to(package)}:{number}: {line.strip()}"
        for path in package.rglob("*.py")
        if "families" not in path.parts and "dpo" not in path.parts  # dpo's beta is DPO's temperature
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if branch.search(line)
    ]
    assert offenders == []


def test_families_are_hashable_static_configuration():
    made = [families.make_family(name, 8) for name in families.REGISTRY]
    assert len({(type(family), family) for family in made}) == len(made)
    assert all(dataclasses.is_dataclass(family) for family in made)
    with pytest.raises(jaxpref.DataError, match="family='cauchy'"):
        families.make_family("cauchy")
