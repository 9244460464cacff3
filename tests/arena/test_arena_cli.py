"""``jaxpref arena``: outputs written, JSON agreeing with the library, one-line errors naming the flag."""

import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from jaxpref.arena import fit_leaderboard, simulate_arena
from jaxpref.cli import app

runner = CliRunner()


@pytest.fixture(scope="module")
def votes_file(tmp_path_factory):
    votes, _, _ = simulate_arena(2, num_models=5, num_voters=40, votes_per_voter=12, random_share=0.3)
    path = tmp_path_factory.mktemp("arena") / "votes.csv"
    votes.to_csv(path, index=False)
    return path, votes


def test_arena_writes_tables_plot_and_json(votes_file, tmp_path):
    path, votes = votes_file
    outputs = {flag: tmp_path / name for flag, name in (("--leaderboard-out", "board.csv"),
               ("--users-out", "voters.parquet"), ("--weights-out", "weights.jsonl"), ("--plot-out", "board.png"))}
    arguments = ["arena", str(path), "--json"] + [item for flag, out in outputs.items() for item in (flag, str(out))]
    result = runner.invoke(app, arguments)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    expected = fit_leaderboard(votes)
    assert summary["converged"] and summary["num_votes"] == len(votes)
    assert [row["model"] for row in summary["leaderboard"]] == expected.leaderboard["model"].tolist()
    np.testing.assert_allclose([row["theta"] for row in summary["leaderboard"]], expected.leaderboard["theta"])
    board = pd.read_csv(outputs["--leaderboard-out"])
    np.testing.assert_allclose(board["elo"], expected.leaderboard["elo"])
    assert pd.read_parquet(outputs["--users-out"])["voter"].tolist() == expected.voters["voter"].tolist()
    assert len(pd.read_json(outputs["--weights-out"], lines=True)) == len(votes)
    assert outputs["--plot-out"].read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize(
    "extra, fragment",
    [
        (["--family", "npmle"], "--family 'npmle'"),
        (["--voter-column", "who"], "--voter-column 'who'"),
        (["--leaderboard-out", "board.txt"], "--leaderboard-out"),
        (["--plot-out", "board.jpg"], "--plot-out"),
        (["--level", "1.5"], "--level 1.5"),
    ],
)
def test_arena_bad_options_exit_2_with_one_line(votes_file, extra, fragment):
    result = runner.invoke(app, ["arena", str(votes_file[0]), *extra])
    assert result.exit_code == 2
    assert fragment in result.output and "Traceback" not in result.output
