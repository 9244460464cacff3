"""The paper-reproduction experiments: every script runs in --quick mode and writes parseable
outputs whose numbers obey what must hold; the shared helpers agree with independent references.

The three heaviest scripts (compile-bound, ~30-45 s of CPU each) are marked slow; run them with
``pytest tests/test_experiments_paper.py -m slow``.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpref.core import driver, em
from jaxpref.io.data import fixed_n_counts
from jaxpref.core.families import make_family
from jaxpref.simulate import eta_distribution, simulate_counts

REPO = Path(__file__).resolve().parent.parent
EXPERIMENTS = REPO / "experiments"
sys.path.insert(0, str(EXPERIMENTS))

import _common as common


def run_quick(script: str, out: Path) -> dict:
    """Runs ``experiments/<script>.py --quick --out <out>`` and returns its parsed JSON."""
    done = subprocess.run(
        [sys.executable, str(EXPERIMENTS / f"{script}.py"), "--quick", "--out", str(out)],
        cwd=REPO, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for suffix in ("json", "md", "png"):
        assert (out / f"{script}.{suffix}").stat().st_size > 0
    assert (out / f"{script}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    markdown = (out / f"{script}.md").read_text()
    assert markdown.startswith("## ") and "|---|" in markdown and "Mode: quick" in markdown
    numbers = json.loads((out / f"{script}.json").read_text())
    assert numbers["meta"]["mode"] == "quick"
    return numbers


def test_filtering_quick(tmp_path):
    numbers = run_quick("filtering", tmp_path)
    for curve in numbers["curves"]:
        kept = [row["labels_kept"] for row in curve["sweep"]]
        # A higher threshold can only keep fewer users: a property of any score.
        assert all(a >= b for a, b in itertools.pairwise(kept))
        assert kept[0] == 1.0 and curve["sweep"][0]["signal"] == pytest.approx(1.0)
        shares = [row["attentive_share"] for row in curve["sweep"] if row["labels_kept"] > 0]
        assert all(0.0 <= s <= 1.0 for s in shares)
    oracle = [c for c in numbers["curves"] if c["scorer"] == "oracle" and c["truth"] == "two_point"]
    for curve in oracle:
        # Keeping only the true eta = 0.9 users raises the attentive share from ~0.42 to ~0.9.
        at_half = next(row for row in curve["sweep"] if row["threshold"] == 0.5)
        assert at_half["attentive_share"] > curve["sweep"][0]["attentive_share"] + 0.3


def test_beyond_paper_quick(tmp_path):
    studies = run_quick("beyond_paper", tmp_path)["studies"]
    grouped = studies["two topics, mu = (0.60, 0.95)"]
    assert len(grouped["EM, mu per group"]["mu_hat"]) == 2
    assert isinstance(grouped["EM, one pooled mu"]["mu_hat"], float)
    assert studies["per-label p from a reward model"]["EM, per-label p"]["mu_hat"] is None
    for variants in studies.values():
        for numbers in variants.values():
            if isinstance(numbers, dict):
                assert 0.0 <= numbers["user_auc"] <= 1.0


@pytest.mark.slow
def test_table4_quick(tmp_path):
    numbers = run_quick("table4", tmp_path)
    cells = numbers["cells"]
    assert {c["mu_mode"] for c in cells} == {"known", "prior", "free"}
    assert all(np.isfinite(c["relative_error"]["mean"]) for c in cells)
    known = {c["users"]: c["relative_error"]["mean"] for c in cells if (c["setting"], c["mu_mode"]) == ("two_point", "known")}
    small, large = sorted(known)
    assert known[large] < known[small]  # tenfold more users: error down by about sqrt(10)


@pytest.mark.slow
def test_recovery_quick(tmp_path):
    results = run_quick("recovery", tmp_path)["results"]
    for entry in results:
        if entry["mu_mode"] == "known":
            assert entry["mu_hat"] == pytest.approx(entry["mu"])
        assert -1.0 <= entry["eta_correlation"] <= 1.0


@pytest.mark.slow
def test_gap_detection_quick(tmp_path):
    cells = run_quick("gap_detection", tmp_path)["cells"]
    for cell in cells:
        # With equal n the posterior mean is increasing in k: same ranking, same AUC.
        assert cell["auc"]["mean"] == pytest.approx(cell["auc_raw_count"]["mean"], abs=1e-9)
    two_point = sorted((c["mu"], c["auc"]["mean"]) for c in cells if c["truth"] == "two_point")
    assert two_point[-1][1] > two_point[0][1]


@pytest.mark.parametrize("family", ["two_point", "beta"])
def test_histogram_law_matches_simulated_users(family):
    """`count_probabilities` (closed form / exact quadrature) against users drawn by the package's
    own simulator, and the multinomial histograms against that law."""
    options = {"alpha": 3.0, "beta": 5.0} if family == "beta" else {"support": (0.1, 0.9), "weight_hi": 0.4}
    distribution = eta_distribution(family, **options)
    probabilities = common.count_probabilities(distribution, 8, 0.8)
    assert probabilities.sum() == pytest.approx(1.0, abs=1e-12)
    num_users = 200_000
    with jax.enable_x64(True):
        num_pref_a, _, _ = simulate_counts(jax.random.key(1), num_users, 8, 0.8, distribution)
    empirical = np.bincount(np.asarray(num_pref_a).astype(int), minlength=9) / num_users
    sd = np.sqrt(probabilities * (1 - probabilities) / num_users)
    assert np.all(np.abs(empirical - probabilities) < 5 * sd + 1e-12)
    histograms = common.sample_histograms((0, 1), 400, 1000, 8, 0.8, distribution)
    assert np.all(histograms.sum(axis=1) == 1000)
    mean_sd = np.sqrt(probabilities * (1 - probabilities) * 1000 / 400)
    assert np.all(np.abs(histograms.mean(axis=0) - 1000 * probabilities) < 5 * mean_sd + 1e-9)


def test_experiment_fits_are_certified_and_beat_plain_em():
    """The experiments' fits (the library's certified fit) reach at least plain EM's optimum where plain
    EM converges fast (two-point, known support), for both the prior and the free mu."""
    with jax.enable_x64(True):
        distribution = eta_distribution("two_point", support=(0.1, 0.9), weight_hi=0.4)
        num_pref_a, _, _ = simulate_counts(jax.random.key(3), 4000, 10, 0.8, distribution)
        stats = fixed_n_counts(num_pref_a, 10)
        for mode in ("prior", "free"):
            config = common.mu_config(make_family("two_point", support=(0.1, 0.9)), mode, tol=1e-12, max_iter=20000)
            start = jnp.asarray([0.75])
            plain = driver.fit(em.init(config, start), stats, config._replace(polish=False), method="em")
            certified = common.fit_stats(stats, config, start)
            assert bool(certified.converged) and float(certified.optimality_gap) <= config.gap_tol
            assert float(certified.objective) >= float(plain.objective) - 1e-9
            assert float(certified.state.mu[0]) == pytest.approx(float(plain.state.mu[0]), abs=1e-4)


def test_markdown_table_and_json_ready():
    table = common.markdown_table(["a", "b"], [[1, 0.123456], ["x", float("nan")]])
    assert table.splitlines() == ["| a | b |", "|---|---|", "| 1 | 0.1235 |", "| x | nan |"]
    ready = common._json_ready({"v": np.arange(2), "f": np.float64("nan"), (1, 2): np.bool_(True)})
    assert json.loads(json.dumps(ready)) == {"v": [0, 1], "f": None, "(1, 2)": True}


def test_mean_sd_ignores_nan():
    summary = common.mean_sd(np.array([1.0, 3.0, np.nan]))
    assert summary["mean"] == 2.0 and summary["sd"] == pytest.approx(np.sqrt(2.0))
