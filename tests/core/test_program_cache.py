"""The disk cache of traced programs (`jaxpref.core.program_cache`): same results as plain jit, one
entry per signature, reused across processes (simulated by emptying the in-process table), and a
fall-back to plain jit wherever it cannot help."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpref
from jaxpref.core import program_cache


@program_cache.cached_jit(static_argnames=("power",))
def scaled_sum(x, weights, power):
    return {"total": jnp.sum(weights["a"] * x**power), "shape": x.shape[0] * jnp.ones(())}


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(program_cache, "directory", lambda: tmp_path)
    monkeypatch.setattr(program_cache, "_LOADED", {})
    return tmp_path


def entries(folder):
    return sorted(path.name for path in folder.iterdir() if not path.name.startswith("."))


def test_stored_program_gives_the_jit_result_and_is_reused_from_disk(cache, monkeypatch):
    x, weights = jnp.arange(4.0), {"a": jnp.asarray(2.0)}
    expected = scaled_sum.jitted(x, weights, power=2)
    first = scaled_sum(x, weights, power=2)
    assert len(entries(cache)) == 1
    np.testing.assert_array_equal(first["total"], expected["total"])
    # A new process: nothing loaded yet, and tracing again would fail the test.
    monkeypatch.setattr(program_cache, "_LOADED", {})
    monkeypatch.setattr(program_cache, "_export", lambda *args: pytest.fail("traced again"))
    again = scaled_sum(x, weights, power=2)
    assert set(again) == {"total", "shape"}
    np.testing.assert_array_equal(again["total"], expected["total"])
    assert float(again["shape"]) == 4.0


def test_one_entry_per_signature(cache, monkeypatch):
    weights = {"a": jnp.asarray(1.0)}
    scaled_sum(jnp.arange(4.0), weights, power=2)
    scaled_sum(jnp.arange(4.0), weights, power=2)
    assert len(entries(cache)) == 1
    scaled_sum(jnp.arange(4.0), weights, power=3)  # another static argument
    scaled_sum(jnp.arange(5.0), weights, power=2)  # another shape
    scaled_sum(jnp.arange(4), weights, power=2)  # another dtype
    assert len(entries(cache)) == 4
    monkeypatch.setattr(program_cache, "_source_digest", lambda: "edited package")
    assert float(scaled_sum(jnp.arange(4.0), weights, power=2)["total"]) == 14.0
    assert len(entries(cache)) == 5  # edited source never reuses an old program


def test_traced_calls_and_unset_cache_use_plain_jit(cache, monkeypatch):
    weights = {"a": jnp.asarray(1.0)}
    inside = jax.jit(lambda x: scaled_sum(x, weights, power=2)["total"])(jnp.arange(3.0))
    assert float(inside) == 5.0
    assert entries(cache) == []
    monkeypatch.setattr(program_cache, "directory", lambda: None)
    assert float(scaled_sum(jnp.arange(3.0), weights, power=2)["total"]) == 5.0
    assert entries(cache) == []


def test_a_damaged_entry_is_traced_again(cache, monkeypatch):
    weights = {"a": jnp.asarray(1.0)}
    scaled_sum(jnp.arange(3.0), weights, power=2)
    (entry,) = entries(cache)
    (cache / entry).write_bytes(b"not a program")
    monkeypatch.setattr(program_cache, "_LOADED", {})
    assert float(scaled_sum(jnp.arange(3.0), weights, power=2)["total"]) == 5.0
    assert (cache / entry).read_bytes() != b"not a program"


@pytest.mark.parametrize("options", [dict(), dict(family="beta", mu=0.74, num_grid=16)])
def test_fit_with_stored_programs_equals_the_fit_without(cache, monkeypatch, options):
    rng = np.random.default_rng(0)
    data = {"user": np.repeat([f"u{j}" for j in range(40)], 6), "label": (rng.random(240) < 0.7).astype(int)}
    monkeypatch.setattr(program_cache, "directory", lambda: None)
    plain = jaxpref.fit_attentiveness(data, **options)
    monkeypatch.setattr(program_cache, "directory", lambda: cache)
    stored = jaxpref.fit_attentiveness(data, **options)
    assert len(entries(cache)) >= 4  # restarts, the float64 finish, the Hessian, the summaries
    monkeypatch.setattr(program_cache, "_LOADED", {})
    reloaded = jaxpref.fit_attentiveness(data, **options)
    for fit in (stored, reloaded):
        np.testing.assert_equal(fit.params, plain.params)  # NaN equals NaN here
        np.testing.assert_equal(fit.standard_errors, plain.standard_errors)
        assert fit.loglik == plain.loglik and fit.converged == plain.converged
        assert fit.users.equals(plain.users)
