"""DPO losses against closed forms computed by hand with NumPy, and their limits."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from jaxpref.dpo.losses import (
    LOSS_TYPES,
    conservative_loss,
    dpo_logits,
    dpo_loss,
    robust_loss,
    sequence_log_probs,
    sigmoid_loss,
)

BATCH = 5
finite_floats = st.floats(-4.0, 4.0, allow_nan=False, width=32)
batch_arrays = st.lists(finite_floats, min_size=BATCH, max_size=BATCH).map(
    lambda values: np.asarray(values, dtype=np.float32)
)


def numpy_softplus(x):
    """log(1 + exp(x)) computed stably in float64: -log sigmoid(-x)."""
    x = np.asarray(x, dtype=np.float64)
    return np.logaddexp(0.0, x)


def numpy_reference(pc, pr, rc, rr, beta, loss_type, eps, weights):
    """Independent float64 NumPy version of every loss, written out from the papers."""
    h = (np.float64(pc) - pr) - (np.float64(rc) - rr)
    clean = numpy_softplus(-beta * h)  # -log sigmoid(beta h)
    flipped = numpy_softplus(beta * h)  # -log sigmoid(-beta h)
    if loss_type == "sigmoid":
        losses = clean
    elif loss_type == "conservative":
        losses = (1 - eps) * clean + eps * flipped
    elif loss_type == "robust":
        losses = ((1 - eps) * clean - eps * flipped) / (1 - 2 * eps)
    else:
        losses = (h - 1 / (2 * beta)) ** 2
    return np.sum(weights * losses) / np.sum(weights)


def test_hand_computed_values():
    # pi(c) - pi(r) = 1 and ref(c) - ref(r) = 0, so h = 1; with beta = 0.5:
    args = [jnp.array([-1.0]), jnp.array([-2.0]), jnp.array([-1.5]), jnp.array([-1.5])]
    expected = {
        "sigmoid": math.log1p(math.exp(-0.5)),
        "conservative": 0.8 * math.log1p(math.exp(-0.5)) + 0.2 * math.log1p(math.exp(0.5)),
        "robust": (0.8 * math.log1p(math.exp(-0.5)) - 0.2 * math.log1p(math.exp(0.5))) / 0.6,
        "ipo": (1.0 - 1.0) ** 2,
    }
    for loss_type, value in expected.items():
        eps = 0.2 if loss_type in ("conservative", "robust") else None
        loss, metrics = dpo_loss(*args, beta=0.5, loss_type=loss_type, eps=eps)
        assert float(loss) == pytest.approx(value, rel=1e-6, abs=1e-7), loss_type
    # implicit rewards: beta (pi - ref) = 0.5 * 0.5 and 0.5 * (-0.5)
    assert float(metrics.chosen_reward) == pytest.approx(0.25)
    assert float(metrics.rejected_reward) == pytest.approx(-0.25)
    assert float(metrics.reward_margin) == pytest.approx(0.5)
    assert float(metrics.reward_accuracy) == 1.0


def test_ipo_value_away_from_its_target():
    # h = 3, beta = 0.25: (3 - 2)^2 = 1
    loss, _ = dpo_loss(
        jnp.array([0.0]),
        jnp.array([-3.0]),
        jnp.array([0.0]),
        jnp.array([0.0]),
        beta=0.25,
        loss_type="ipo",
    )
    assert float(loss) == pytest.approx(1.0)


@settings(deadline=None, max_examples=25)
@given(
    pc=batch_arrays,
    pr=batch_arrays,
    rc=batch_arrays,
    rr=batch_arrays,
    eps=st.lists(st.floats(0.0, 0.45), min_size=BATCH, max_size=BATCH),
    weights=st.lists(st.floats(0.05, 3.0), min_size=BATCH, max_size=BATCH),
    beta=st.sampled_from([0.05, 0.1, 0.5, 2.0]),
    loss_type=st.sampled_from(LOSS_TYPES),
)
def test_matches_numpy_reference(pc, pr, rc, rr, eps, weights, beta, loss_type):
    eps = np.asarray(eps, dtype=np.float32)
    weights = np.asarray(weights, dtype=np.float32)
    uses_eps = loss_type in ("conservative", "robust")
    loss, _ = dpo_loss(
        pc,
        pr,
        rc,
        rr,
        beta=beta,
        loss_type=loss_type,
        eps=eps if uses_eps else None,
        weights=weights,
    )
    expected = numpy_reference(pc, pr, rc, rr, beta, loss_type, eps if uses_eps else 0.0, weights)
    np.testing.assert_allclose(float(loss), expected, rtol=2e-4, atol=2e-5)


@settings(deadline=None, max_examples=25)
@given(logits=batch_arrays, eps=st.floats(0.0, 0.45), beta=st.sampled_from([0.1, 1.0, 3.0]))
def test_robust_loss_is_unbiased_under_known_flip_rate(logits, eps, beta):
    # With the label flipped at rate eps, the expected rDPO loss is the clean sigmoid loss.
    expected_over_flips = (1 - eps) * robust_loss(logits, beta, eps) + eps * robust_loss(-logits, beta, eps)
    np.testing.assert_allclose(expected_over_flips, sigmoid_loss(logits, beta), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("loss_type", ["conservative", "robust"])
def test_zero_eps_equals_sigmoid(loss_type):
    args = [jnp.asarray(np.random.default_rng(i).normal(size=7), jnp.float32) for i in range(4)]
    noisy, noisy_metrics = dpo_loss(*args, loss_type=loss_type, eps=jnp.zeros(7))
    clean, clean_metrics = dpo_loss(*args, loss_type="sigmoid")
    np.testing.assert_allclose(noisy, clean, rtol=1e-6)
    np.testing.assert_allclose(noisy_metrics, clean_metrics, rtol=1e-6)


@pytest.mark.parametrize("eps", [0.45, 0.49, 0.5, [0.0, 0.5, 0.5, 0.3]])
def test_robust_loss_is_finite_up_to_one_half(eps):
    # eps = 1/2 made 0 / 0 before the cap; jaxpref's own flip_rate reaches 1/2.
    logits = jnp.asarray([0.0, 1.0, -2.0, 30.0])
    eps = jnp.broadcast_to(jnp.asarray(eps, jnp.float32), logits.shape)

    def mean_loss(values):
        return dpo_loss(values, jnp.zeros(4), jnp.zeros(4), jnp.zeros(4), beta=0.5, loss_type="robust", eps=eps)[0]

    value, gradient = jax.value_and_grad(mean_loss)(logits)
    assert np.isfinite(float(value)) and np.isfinite(np.asarray(gradient)).all()
    # Above the cap the loss is the capped one: numerically, eps = 0.45 in a float64 reference.
    capped = np.minimum(np.asarray(eps, np.float64), 0.45)
    h = 0.5 * np.asarray(logits, np.float64)
    expected = ((1 - capped) * np.logaddexp(0, -h) - capped * np.logaddexp(0, h)) / (1 - 2 * capped)
    np.testing.assert_allclose(float(value), expected.mean(), rtol=1e-5, atol=1e-6)


def test_conservative_at_one_half_is_symmetric():
    logits = jnp.linspace(-3, 3, 7)
    half = conservative_loss(logits, 0.7, 0.5)
    np.testing.assert_allclose(half, conservative_loss(-logits, 0.7, 0.5), rtol=1e-6)


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_unit_weights_equal_unweighted_and_integer_weights_duplicate(loss_type):
    rng = np.random.default_rng(3)
    args = [rng.normal(size=4).astype(np.float32) for _ in range(4)]
    eps = np.full(4, 0.1, np.float32) if loss_type in ("conservative", "robust") else None
    unweighted, _ = dpo_loss(*args, loss_type=loss_type, eps=eps)
    ones, _ = dpo_loss(*args, loss_type=loss_type, eps=eps, weights=np.ones(4, np.float32))
    np.testing.assert_allclose(ones, unweighted, rtol=1e-6)
    counts = np.array([1, 3, 0, 2])
    weighted, weighted_metrics = dpo_loss(
        *args, loss_type=loss_type, eps=eps, weights=counts.astype(np.float32)
    )
    repeated = [np.repeat(a, counts) for a in args]
    duplicated, duplicated_metrics = dpo_loss(
        *repeated, loss_type=loss_type, eps=None if eps is None else np.repeat(eps, counts)
    )
    np.testing.assert_allclose(weighted, duplicated, rtol=1e-5)
    np.testing.assert_allclose(weighted_metrics, duplicated_metrics, rtol=1e-5, atol=1e-6)


def test_metrics_by_hand():
    pc, pr = jnp.array([0.0, -1.0, -2.0]), jnp.array([-1.0, 0.0, -2.0])
    rc = rr = jnp.zeros(3)
    _, metrics = dpo_loss(pc, pr, rc, rr, beta=2.0, weights=jnp.array([1.0, 1.0, 2.0]))
    # chosen rewards 2*(0, -1, -2), rejected 2*(-1, 0, -2), weights (1, 1, 2) / 4
    assert float(metrics.chosen_reward) == pytest.approx((0 - 2 - 8) / 4)
    assert float(metrics.rejected_reward) == pytest.approx((-2 + 0 - 8) / 4)
    assert float(metrics.reward_margin) == pytest.approx((2 - 2 + 0) / 4)
    assert float(metrics.reward_accuracy) == pytest.approx(1 / 4)  # the tie does not count


@pytest.mark.parametrize("loss_type", LOSS_TYPES)
def test_gradient_matches_finite_differences(loss_type):
    rng = np.random.default_rng(7)
    point = rng.normal(size=(4, 3)).astype(np.float32)
    eps = np.array([0.0, 0.1, 0.3], np.float32) if loss_type in ("conservative", "robust") else None
    weights = np.array([0.5, 1.0, 2.0], np.float32)

    def loss_of(stacked):
        return dpo_loss(*stacked, beta=0.8, loss_type=loss_type, eps=eps, weights=weights)[0]

    gradient = np.asarray(jax.grad(loss_of)(jnp.asarray(point)))
    step = 1e-2
    numeric = np.zeros_like(point, dtype=np.float64)
    for index in np.ndindex(point.shape):
        up, down = point.copy(), point.copy()
        up[index] += step
        down[index] -= step
        numeric[index] = (float(loss_of(up)) - float(loss_of(down))) / (2 * step)
    np.testing.assert_allclose(gradient, numeric, rtol=2e-3, atol=2e-4)
    assert np.abs(gradient).max() > 1e-3


def test_dpo_logits_definition():
    assert float(dpo_logits(1.0, 2.0, 4.0, 8.0)) == pytest.approx((1 - 2) - (4 - 8))


def test_sequence_log_probs_matches_a_loop():
    rng = np.random.default_rng(0)
    batch, length, vocab = 2, 6, 5
    logits = rng.normal(size=(batch, length, vocab)).astype(np.float32)
    tokens = rng.integers(0, vocab, size=(batch, length))
    mask = np.array([[0, 0, 1, 1, 1, 0], [0, 1, 1, 1, 1, 1]], np.float32)
    expected = np.zeros(batch)
    for b in range(batch):
        for t in range(1, length):
            if mask[b, t]:
                row = logits[b, t - 1].astype(np.float64)
                expected[b] += row[tokens[b, t]] - np.log(np.exp(row).sum())
    np.testing.assert_allclose(sequence_log_probs(logits, tokens, mask), expected, rtol=1e-5)


def test_jit_and_tracing_are_supported():
    @jax.jit
    def traced(values, eps):
        return dpo_loss(values, values * 0.5, values, values, loss_type="robust", eps=eps)[0]

    assert np.isfinite(float(traced(jnp.ones(3), jnp.full(3, 0.2))))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_type": "hinge"}, "loss_type"),
        ({"beta": 0.0}, "beta"),
        ({"beta": -1.0}, "beta"),
        ({"loss_type": "robust", "eps": 0.6}, "eps"),
        ({"loss_type": "conservative", "eps": 1.5}, "eps"),
        ({"loss_type": "conservative", "eps": np.full(2, 0.1)}, "eps"),
        ({"loss_type": "sigmoid", "eps": 0.1}, "eps"),
        ({"weights": np.array([1.0, -1.0, 1.0])}, "weights"),
        ({"weights": np.array([1.0, np.nan, 1.0])}, "weights"),
    ],
)
def test_bad_arguments_raise_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dpo_loss(jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), jnp.zeros(3), **kwargs)


def test_mismatched_shapes_raise():
    with pytest.raises(ValueError, match="reference_chosen_log_probs"):
        dpo_loss(jnp.zeros(3), jnp.zeros(3), jnp.zeros(4), jnp.zeros(3))
