"""Model comparison: the generating family wins on separated cases, ties when inseparable; CLI."""

import json
import math
import re
import warnings

import jax
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from jaxpref.bayes.cli import compare_command
from jaxpref.bayes.compare import compare, ranking_json
from jaxpref.io.data import DataError
from jaxpref.simulate import simulate

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")

#: Clearly separated truths: one point, an interior two-point (bimodal), a spread-out Beta.
SEPARATED = {
    "point": {"family": "point", "eta": 0.6},
    "two_point": {"family": "two_point", "support": (0.3, 0.9), "weight_hi": 0.5},
    "beta": {"family": "beta", "alpha": 2.0, "beta": 2.0},
}


@pytest.fixture(scope="module")
def separated_frames():
    # One size for all cases: the EM programs compile once.
    return {truth: simulate(jax.random.key(1), 1000, 30, mu=0.9, **options).frame
            for truth, options in SEPARATED.items()}


@pytest.mark.parametrize("truth", list(SEPARATED))
def test_bic_picks_the_generating_family(separated_frames, truth):
    table = compare(separated_frames[truth], ["point", "two_point", "beta"], method="bic", mu=0.9)
    assert table.loc[0, "family"] == truth
    assert not table.attrs["tie"]
    assert table["diff"].is_monotonic_increasing and table.loc[0, "diff"] == 0.0
    assert table["weight"].sum() == pytest.approx(1.0)
    # BIC = p log m - 2 loglik, with p = 1, 2, 3 parameters (mu known; two_point: weight + support).
    params = dict(zip(table["family"], table["num_params"]))
    assert params == {"point": 1, "beta": 2, "two_point": 3}


def test_bic_standard_errors_follow_the_per_user_definition(separated_frames):
    table = compare(separated_frames["two_point"], ["point", "two_point"], method="bic", mu=0.9)
    worst = table.iloc[1]
    assert worst["diff_se"] > 0 and worst["se"] > 0
    assert math.isfinite(worst["diff"]) and table.attrs["scale"] == "bic"


def test_loo_reports_a_tie_when_one_label_per_user():
    # With one label per user only E[eta] is identified: every family fits equally well.
    sim = simulate(jax.random.key(4), 300, 1, mu=0.9, **SEPARATED["two_point"])
    table = compare(
        sim.frame, ["point", "beta"], method="loo", mu=0.9, num_grid=16,
        num_warmup=200, num_samples=200, num_chains=2,
    )
    assert table.attrs["tie"] and table.loc[1, "tied_with_best"]
    assert abs(table.loc[1, "diff"]) < 4.0
    assert table.attrs["method"] == "loo"
    # elpd_loo of 300 one-label users is about 300 log P(y); it cannot exceed 0.
    assert (table["score"] < 0).all() and (table["score"] > 300 * math.log(0.25)).all()


@pytest.fixture(scope="module")
def grouped_frame():
    # Two topics with very different gaps: one mu cannot reproduce both.
    return simulate(jax.random.key(5), 150, 20, family="two_point", support=(0.1, 0.9), mu=(0.6, 0.95)).frame


@pytest.mark.slow
def test_model_structures_and_existing_fits_compare(grouped_frame):
    from jaxpref.bayes.compare import compare_models
    from jaxpref.bayes.model import fit_bayes

    nuts = {"num_warmup": 200, "num_samples": 300, "num_chains": 2}
    one_mu = fit_bayes(grouped_frame, family="two_point", support=(0.1, 0.9), **nuts)
    result = compare_models(
        grouped_frame,
        {"one mu": one_mu, "per topic": {"family": "two_point", "support": (0.1, 0.9), "group_column": "group"}},
        evidence=True, **nuts,
    )
    table = result.table
    assert table["model"].tolist() == ["per topic", "one mu"]
    assert result.fits["one mu"] is one_mu
    worst = table.iloc[1]
    assert worst["diff"] > 2 * worst["diff_se"] and not worst["tied_with_best"]
    assert table["weight"].sum() == pytest.approx(1.0)
    # The misfit is shown, not only ranked: one mu fails its predictive check, per topic passes.
    assert worst["ppc_p_value"] < 0.05 < table.loc[0, "ppc_p_value"]
    assert any("one mu" in problem and "predictive p-value" in problem for problem in result.problems)
    # Bayes factors agree with LOO here, decisively.
    assert table.loc[0, "log_bf"] == 0.0 and worst["log_bf"] < -10
    assert (table["pareto_k_max"] < 0.7).all()
    assert "stacking" in table.attrs["explanation"]


@pytest.mark.parametrize(
    "models, message",
    [
        ({"a": {"family": "beta"}}, "at least two"),
        ({"a": {"family": "beta"}, "b": {"family": "beta", "colour": 1}}, "unknown keys"),
        ({"a": {"family": "beta"}, "b": {"mu": 0.8}}, "needs a family"),
        ({"a": {"family": "beta"}, "b": "beta"}, "models['b']"),
    ],
)
def test_bad_model_specifications(models, message):
    with pytest.raises(DataError, match=re.escape(message)):
        compare({"user": [0, 1], "label": [1, 0]}, models=models)


def test_families_and_models_are_exclusive():
    with pytest.raises(DataError, match="not both"):
        compare({"user": [0, 1], "label": [1, 0]}, ["point", "beta"], models={"a": {"family": "beta"}})


def test_fits_of_different_users_are_refused():
    from types import SimpleNamespace

    from jaxpref.bayes.compare import _same_users

    def fake(ids):
        return SimpleNamespace(data=SimpleNamespace(user_ids=np.asarray(ids, dtype=object)))

    _same_users({"a": fake(["007", "8"]), "b": fake(["007", "8"])})
    with pytest.raises(DataError, match="different users"):
        _same_users({"a": fake(["007", "8"]), "b": fake(["7", "8"])})


def test_ranking_json_is_plain_json(separated_frames):
    payload = ranking_json(compare(separated_frames["two_point"], "point,two_point", method="bic", mu=0.9))
    text = json.dumps(payload)
    assert json.loads(text)["method"] == "bic"
    assert [row["family"] for row in payload["ranking"]] == ["two_point", "point"]
    assert {"family", "score", "se", "diff", "diff_se", "weight", "tied_with_best"} <= set(payload["ranking"][0])


@pytest.mark.parametrize(
    "families, method, message",
    [
        (["point", "gaussian"], "bic", "unknown"),
        (["point"], "bic", "at least two"),
        (["point", "point"], "bic", "at least two"),
        (["point", "beta"], "aic", "method="),
    ],
)
def test_bad_options(families, method, message):
    with pytest.raises(DataError, match=message):
        compare({"user": [0, 1], "label": [1, 0]}, families, method)


@pytest.fixture(scope="module")
def cli_app():
    app = typer.Typer()
    app.command("compare")(compare_command)
    # A second command keeps typer from collapsing the app into the single command.
    app.command("noop")(lambda: None)
    return app


def test_cli_json(cli_app, separated_frames, tmp_path):
    path = tmp_path / "labels.csv"
    separated_frames["two_point"].to_csv(path, index=False)
    result = CliRunner().invoke(
        cli_app, ["compare", str(path), "--families", "point,two_point", "--method", "bic", "--mu", "0.9", "--json"]
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["method"] == "bic"
    assert payload["ranking"][0]["family"] == "two_point"
    assert np.isfinite(payload["ranking"][1]["score"])


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["--method", "aic"], "--method 'aic'"),
        (["--families", "point,cauchy"], "unknown"),
        (["--mu", "abc"], "--mu"),
        (["--mu", "0.3"], "outside"),
    ],
)
def test_cli_bad_input_exits_2(cli_app, tmp_path, arguments, message):
    path = tmp_path / "labels.csv"
    path.write_text("user,label\n0,1\n0,0\n1,1\n")
    result = CliRunner().invoke(cli_app, ["compare", str(path), *arguments])
    assert result.exit_code == 2
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_cli_missing_file_exits_2(cli_app, tmp_path):
    result = CliRunner().invoke(cli_app, ["compare", str(tmp_path / "absent.csv"), "--method", "bic"])
    assert result.exit_code == 2 and "does not exist" in result.stderr
