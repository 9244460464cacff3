"""Model comparison: the generating family wins on separated cases, ties when inseparable; CLI."""

import json
import math
import warnings

import jax
import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from jaxpref.cli import compare_command
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
