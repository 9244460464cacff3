"""The end-to-end DPO experiment: its toy task by hand, and (slow) the whole --quick run."""

import importlib.util
import json
import os
import sys

import numpy as np
import pytest

EXPERIMENT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "experiments", "dpo_alignment.py"
)


@pytest.fixture(scope="module")
def experiment():
    spec = importlib.util.spec_from_file_location("dpo_alignment", EXPERIMENT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_true_reward_counts_positions_on_the_ladder(experiment):
    prompts = np.array([[experiment.START, 3], [experiment.START, 8]])
    responses = np.array([[3, 4, 5, 0], [8, 9, 1, 1]])
    # prompt 3 wants 3, 4, 5, 6; prompt 8 wants 8, 9, 0, 1
    np.testing.assert_array_equal(experiment.true_reward(prompts, responses), [3, 3])


def test_attentive_preference_and_win_rate(experiment):
    rng = np.random.default_rng(0)
    preference = experiment.attentive_preference(
        rng, np.array([3, 1] + [2] * 2000), np.array([1, 3] + [2] * 2000)
    )
    assert preference[0] == 1 and preference[1] == 0
    assert abs(preference[2:].mean() - 0.5) < 0.05  # ties are coin flips
    prompts = np.array([[experiment.START, 0]] * 3)
    policy = np.array([[0, 1], [0, 0], [5, 5]])  # rewards 2, 1, 0
    reference = np.array([[0, 0], [0, 0], [0, 0]])  # rewards 1, 1, 1
    rate, reward = experiment.win_rate(prompts, policy, reference)
    assert rate == pytest.approx((1 + 0.5 + 0) / 3) and reward == pytest.approx(1.0)


def test_auc_matches_pairwise_count(experiment):
    rng = np.random.default_rng(1)
    scores, positives = rng.integers(0, 4, size=50).astype(float), rng.uniform(size=50) < 0.4
    pairs = [(s > t) + 0.5 * (s == t) for s in scores[positives] for t in scores[~positives]]
    assert experiment.auc(scores, positives) == pytest.approx(np.mean(pairs))


def test_mean_sd_interval(experiment):
    stats = experiment._mean_sd([1.0, 2.0, 3.0])
    assert stats["mean"] == 2.0 and stats["sd"] == pytest.approx(1.0)
    assert stats["ci95"] == pytest.approx(4.302653 / np.sqrt(3), rel=1e-5)  # t_{0.975, 2} = 4.3027


def test_curve_metrics_by_hand(experiment):
    curve = [{"step": 10, "win_rate": 0.7}, {"step": 20, "win_rate": 0.9}, {"step": 30, "win_rate": 0.95}]
    metrics = experiment.curve_metrics(curve, reference_win_rate=0.5)
    # trapezoids over [0, 30]: (0.5 + 0.7) / 2 + (0.7 + 0.9) / 2 + (0.9 + 0.95) / 2, each 10 steps wide
    assert metrics["auc"] == pytest.approx((0.6 + 0.8 + 0.925) / 3)
    assert metrics["plateau"] == pytest.approx(0.925) and metrics["steps_to_target"] == 20
    assert np.isnan(experiment.curve_metrics(curve[:1], 0.5)["steps_to_target"])


def test_bradley_terry_labels_follow_the_preference_probability(experiment):
    rng = np.random.default_rng(2)
    reward_a, reward_b = np.full(20000, 3), np.full(20000, 2)
    labels = experiment.bradley_terry_preference(rng, reward_a, reward_b, temperature=1.0)
    assert labels.mean() == pytest.approx(1 / (1 + np.exp(-1.0)), abs=0.01)  # sigmoid(1) = 0.731
    assert experiment.bradley_terry_preference(rng, reward_b, reward_b, 1.0).mean() == pytest.approx(0.5, abs=0.2)


@pytest.mark.slow  # several minutes on 2 CPU cores
def test_quick_mode_end_to_end(experiment, tmp_path):
    experiment.main(["--quick", "--seeds", "1"], output_directory=str(tmp_path))
    stem = tmp_path / "dpo_alignment_quick"
    for suffix in (".json", ".png", ".md"):
        assert (stem.parent / (stem.name + suffix)).stat().st_size > 0
    results = json.loads((stem.parent / (stem.name + ".json")).read_text())
    for family, block in results["summary"].items():
        assert 0.6 < block["mu"] < 0.9, family
        assert abs(block["reference"]["win_rate"]["mean"] - 0.5) < 0.1  # same policy, other samples
        # DPO on truly attentive labels must improve on the reference under the true reward
        assert block["arms"]["oracle_attentive"]["final"]["win_rate"]["mean"] > 0.6
