"""The command line: simulate -> fit -> filter, JSON output, and bad input (exit 2, one line)."""

import os
import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

from jaxpref.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def labels_file(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli")
    data, truth = folder / "data.parquet", folder / "truth.parquet"
    result = runner.invoke(
        app,
        ["simulate", "--users", "400", "--labels", "15", "--mu", "0.8", "--family", "two_point",
         "--support", "0.1,0.9", "--weight-hi", "0.4", "--seed", "3", "--out", str(data), "--truth-out", str(truth)],
    )
    assert result.exit_code == 0, result.output
    return data, truth


def test_simulate_writes_labels_and_truth(labels_file):
    data, truth = labels_file
    frame, eta = pd.read_parquet(data), pd.read_parquet(truth)
    assert list(frame.columns) == ["user", "label"] and len(frame) == 400 * 15
    assert list(eta.columns) == ["user", "eta"] and set(eta["eta"].round(3)) == {0.1, 0.9}


def test_simulate_is_deterministic(labels_file, tmp_path):
    again = tmp_path / "again.parquet"
    runner.invoke(app, ["simulate", "--users", "400", "--labels", "15", "--mu", "0.8", "--support", "0.1,0.9",
                        "--weight-hi", "0.4", "--seed", "3", "--out", str(again)])
    pd.testing.assert_frame_equal(pd.read_parquet(again), pd.read_parquet(labels_file[0]))


def test_fit_json_has_the_documented_keys(labels_file, tmp_path):
    users_out = tmp_path / "users.csv"
    result = runner.invoke(
        app, ["fit", str(labels_file[0]), "--family", "two_point", "--support", "0.1,0.9", "--mu", "0.8",
              "--json", "--users-out", str(users_out)],
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert {"family", "params", "loglik", "n_iter", "converged", "n_users", "n_labels", "bic"} <= set(summary)
    assert set(summary["params"]) == {"mu", "support", "weights", "alpha", "beta"}
    assert summary["n_users"] == 400 and summary["params"]["mu"] == pytest.approx(0.8)
    assert abs(summary["params"]["weights"][1] - 0.4) < 0.1
    users = pd.read_csv(users_out)
    assert list(users.columns) == ["user", "n_labels", "n_pref_a", "eta_mean", "eta_map", "eta_sd", "prob_attentive"]


def test_fit_prints_a_table(labels_file):
    result = runner.invoke(app, ["fit", str(labels_file[0]), "--family", "beta", "--mu-prior", "8,2"])
    assert result.exit_code == 0, result.output
    assert "alpha" in result.stdout and "BIC" in result.stdout


def test_filter_keeps_every_column_of_kept_users(labels_file, tmp_path):
    out = tmp_path / "kept.jsonl"
    result = runner.invoke(
        app, ["filter", str(labels_file[0]), "--out", str(out), "--rule", "eta_map", "--cutoff", "0.5",
              "--family", "two_point", "--support", "0.1,0.9", "--mu", "0.8", "--weights"],
    )
    assert result.exit_code == 0, result.output
    kept = pd.read_json(out, lines=True)
    assert {"user", "label", "label_attentive", "flip_rate", "eta_mean"} <= set(kept.columns)
    truth = pd.read_parquet(labels_file[1]).set_index("user")["eta"]
    attentive_share_kept = (truth.loc[kept["user"].unique()] > 0.5).mean()
    attentive_share_all = (truth > 0.5).mean()  # about 0.4
    assert attentive_share_kept > 0.7 and attentive_share_kept > 1.5 * attentive_share_all


BAD = [
    (["fit", "missing.parquet"], "does not exist"),
    (["fit", "{data}", "--mu", "0.4"], "outside (0.5, 1)"),
    (["fit", "{data}", "--mu", "abc"], "--mu"),
    (["fit", "{data}", "--family", "gauss"], "--family 'gauss' is unknown: choose one of"),
    (["fit", "{data}", "--support", "0.9"], "--support"),
    (["fit", "{data}", "--p-column", "p"], "p column 'p' not found"),
    (["fit", "{bad}"], "outside {0, 1}"),
    (["filter", "{data}", "--out", "x.txt", "--mu", "0.8"], "unknown format"),
    (["filter", "{data}", "--out", "x.csv", "--rule", "magic", "--mu", "0.8"], "rule='magic'"),
    (["simulate", "--mu", "0.3", "--out", "x.parquet"], "outside (0.5, 1)"),
    (["simulate", "--users", "0", "--out", "x.parquet"], "--users 0"),
]


@pytest.mark.parametrize("arguments, message", BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_input_exits_2_with_one_line(arguments, message, labels_file, tmp_path):
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"user": [1, 2], "label": [1, 3]}).to_csv(bad, index=False)
    arguments = [a.format(data=labels_file[0], bad=bad) for a in arguments]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.output


def test_installed_script_reports_bad_input_without_traceback(tmp_path):
    process = subprocess.run(
        [sys.executable, "-m", "jaxpref.cli", "fit", str(tmp_path / "nope.csv")], capture_output=True, text=True
    )
    assert process.returncode == 2
    assert process.stderr.strip().startswith("error:") and "Traceback" not in process.stderr


def test_demo_runs_and_finds_attentive_users():
    result = runner.invoke(app, ["demo", "--users", "600", "--labels", "20"])
    assert result.exit_code == 0, result.output
    assert "AUC" in result.stdout and "Recovered parameters" in result.stdout


def test_rejected_option_and_help_do_not_import_jax():
    code = ("import sys\nfrom typer.testing import CliRunner\nfrom jaxpref.cli import app\n"
            "assert CliRunner().invoke(app, ['fit', 'x.csv', '--family', 'gauss']).exit_code == 2\n"
            "assert CliRunner().invoke(app, ['fit', 'x.csv', '--nope']).exit_code == 2\n"
            "print(sorted(m for m in ('jax', 'pandas', 'scipy') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]"


def test_compilation_cache_is_used_and_can_be_turned_off(tmp_path):
    data = tmp_path / "small.csv"
    data.write_text("user,label\n" + "".join(f"u{i % 6},{i % 3 % 2}\n" for i in range(30)))
    cache = tmp_path / "xla"
    env = {**os.environ, "JAXPREF_COMPILATION_CACHE": str(cache)}
    command = [sys.executable, "-m", "jaxpref.cli", "fit", str(data), "--mu", "0.74", "--json"]
    first = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    assert any(cache.iterdir())
    # The traced programs are kept too (jaxpref.core.program_cache); a second process reuses them.
    assert len(list((cache / "jaxpref-programs").iterdir())) >= 4
    second = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
    assert json.loads(second) == json.loads(first)
    off = tmp_path / "off"
    env = {**os.environ, "JAXPREF_COMPILATION_CACHE": "off", "XDG_CACHE_HOME": str(off)}
    subprocess.run([sys.executable, "-m", "jaxpref.cli", "fit", str(data), "--mu", "0.74", "--json"], env=env,
                   check=True, capture_output=True)
    assert not off.exists()


@pytest.mark.parametrize("arguments, flag, argument", [
    (["--user-column", "who"], "--user-column <name>", "user_column"),
    (["--restarts", "0"], "--restarts", "num_restarts"),
    (["--mu", "0.3"], "--mu 0.3", "mu="),
])
def test_messages_name_flags_not_library_arguments(labels_file, arguments, flag, argument):
    result = runner.invoke(app, ["fit", str(labels_file[0]), *arguments])
    assert result.exit_code == 2 and flag in result.stderr and argument not in result.stderr
