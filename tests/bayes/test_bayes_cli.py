"""``jaxpref bayes`` and the model specifications of ``jaxpref compare``."""

import json
import warnings

import jax
import pytest
from typer.testing import CliRunner

from jaxpref.bayes.cli import parse_model, read_spec_file
from jaxpref.cli import app
from jaxpref.errors import DataError
from jaxpref.simulate import simulate

warnings.filterwarnings("ignore", category=FutureWarning, module="arviz")


def test_parse_model():
    assert parse_model("one=beta") == ("one", {"family": "beta"})
    assert parse_model("topic=two_point,group=topic,support=0.1:0.9,mu_prior=8:2,grid=32") == (
        "topic", {"family": "two_point", "group_column": "topic", "support": (0.1, 0.9), "mu_prior": (8.0, 2.0),
                  "num_grid": 32})
    assert parse_model("k=beta,mu=0.6:0.9")[1]["mu"] == [0.6, 0.9]
    assert parse_model("f=beta,mu=free")[1]["mu"] == "free"
    assert parse_model("p=beta,p=pcol")[1]["p_column"] == "pcol"


@pytest.mark.parametrize(
    "text, message",
    [("beta", "NAME=FAMILY"), ("a=beta,colour=red", "key one of"), ("a=beta,support=0.1", "a:b"),
     ("a=beta,mu=high", "'free'"), ("a=beta,grid=x", "whole number")],
)
def test_parse_model_errors(text, message):
    with pytest.raises(DataError, match=message):
        parse_model(text)


def test_spec_files(tmp_path):
    toml = tmp_path / "models.toml"
    toml.write_text('[one]\nfamily = "beta"\n[topic]\nfamily = "two_point"\ngroup_column = "topic"\nsupport = [0.1, 0.9]\n')
    assert read_spec_file(toml) == {"one": {"family": "beta"},
                                    "topic": {"family": "two_point", "group_column": "topic", "support": (0.1, 0.9)}}
    as_json = tmp_path / "models.json"
    as_json.write_text(json.dumps({"one": {"family": "beta", "mu": [0.6, 0.9]}}))
    assert read_spec_file(as_json) == {"one": {"family": "beta", "mu": [0.6, 0.9]}}
    bad = tmp_path / "models.yaml"
    bad.write_text("one: beta")
    with pytest.raises(DataError, match=".toml or .json"):
        read_spec_file(bad)


@pytest.mark.parametrize(
    "arguments, message",
    [
        (["compare", "{data}", "--families", "point,beta", "--model", "a=beta", "--method", "bic"], "give one of them"),
        (["compare", "{data}", "--model", "a=beta", "--method", "bic"], "at least two"),
        (["compare", "{data}", "--model", "a=beta,colour=1", "--model", "b=beta"], "key one of"),
        (["bayes", "{data}", "--netcdf", "{dir}/fit.txt"], "must end in .nc"),
        (["bayes", "{data}", "--ppc", "{dir}/absent/ppc.png"], "does not exist"),
        (["bayes", "{data}", "--mu", "abc"], "--mu"),
    ],
)
def test_cli_bad_input_exits_2(tmp_path, arguments, message):
    path = tmp_path / "labels.csv"
    path.write_text("user,label\n0,1\n0,0\n1,1\n")
    arguments = [argument.format(data=path, dir=tmp_path) for argument in arguments]
    result = CliRunner().invoke(app, arguments)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.slow
def test_bayes_command_writes_users_netcdf_and_ppc(tmp_path):
    import arviz as az
    import pandas as pd

    frame = simulate(jax.random.key(2), 40, 8, family="two_point", support=(0.1, 0.9), mu=0.8).frame
    frame["user"] = frame["user"].map(lambda user: f"u{user:02d}")
    path = tmp_path / "labels.csv"
    frame.to_csv(path, index=False)
    result = CliRunner().invoke(app, [
        "bayes", str(path), "--support", "0.1,0.9", "--warmup", "100", "--samples", "100", "--chains", "2",
        "--users", str(tmp_path / "users.csv"), "--netcdf", str(tmp_path / "fit.nc"), "--ppc", str(tmp_path / "ppc.png"),
    ])
    assert result.exit_code == 0, result.output
    assert "posterior predictive check" in result.stdout and "weight_hi" in result.stdout
    users = pd.read_csv(tmp_path / "users.csv", dtype={"user": str})
    assert users["user"].tolist() == frame["user"].drop_duplicates().tolist()
    assert {"eta_mean", "eta_lo", "eta_hi", "prob_attentive"} <= set(users.columns)
    assert az.from_netcdf(str(tmp_path / "fit.nc")).posterior_predictive["k"].shape[:2] == (2, 100)
    assert (tmp_path / "ppc.png").read_bytes()[:4] == b"\x89PNG"
