"""``jaxpref arena``: a leaderboard from arena votes, with voters' attentiveness.

    jaxpref arena votes.parquet
    jaxpref arena votes.parquet --json --leaderboard-out board.csv --users-out voters.parquet
    jaxpref arena votes.csv --family none --bootstrap 200 --plot-out board.png

A one-command typer app that the main CLI loads only when it is run (it imports JAX). Bad input
exits with code 2 and one line naming the flag or column; outputs are written atomically.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

__all__ = ["app", "arena"]

app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)

#: Library argument -> CLI flag, for messages.
_FLAGS = {"voter_column=": "--voter-column ", "support=": "--support ", "family=": "--family ", "bootstrap=": "--bootstrap ",
          "level=": "--level ", "num_grid=": "--num-grid ", "model_a_column=": "--model-a-column ",
          "model_b_column=": "--model-b-column ", "winner_column=": "--winner-column "}


@app.command()
def arena(
    data: Path = typer.Argument(..., help="votes file (.parquet, .csv, .jsonl): judge, model_a, model_b, winner"),
    family: str = typer.Option("two_point", "--family", help="P_eta: two_point, beta, point, or none (plain BT)"),
    support: str = typer.Option("0,1", "--support", help="two_point nodes lo,hi, or 'free' to estimate them"),
    num_grid: int = typer.Option(32, "--num-grid", help="grid size of the beta family"),
    bootstrap: int = typer.Option(0, "--bootstrap", help="voter-bootstrap replicates for percentile CIs"),
    seed: int = typer.Option(0, "--seed", help="seed of the bootstrap"),
    level: float = typer.Option(0.95, "--level", help="confidence level of the intervals"),
    voter_column: str | None = typer.Option(None, "--voter-column", help="voter column (default judge/user)"),
    model_a_column: str = typer.Option("model_a", "--model-a-column"),
    model_b_column: str = typer.Option("model_b", "--model-b-column"),
    winner_column: str = typer.Option("winner", "--winner-column"),
    leaderboard_out: Path | None = typer.Option(None, "--leaderboard-out", help="write the leaderboard here"),
    users_out: Path | None = typer.Option(None, "--users-out", help="write the per-voter table here"),
    weights_out: Path | None = typer.Option(None, "--weights-out", help="write the votes with attentive_weight"),
    plot_out: Path | None = typer.Option(None, "--plot-out", help="write the leaderboard plot (PNG) here"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
) -> None:
    """Fit Bradley-Terry strengths and voters' attentiveness together; print the leaderboard."""
    from jaxpref.cli import parse_floats, use_compilation_cache, user_errors
    from jaxpref.errors import DataError
    from jaxpref.io.atomic import check_output, write_table

    with user_errors():
        outputs = {"--leaderboard-out": leaderboard_out, "--users-out": users_out, "--weights-out": weights_out}
        for flag, path in outputs.items():
            if path is not None:
                check_output(path, [data], flag)
        if plot_out is not None and plot_out.suffix.lower() != ".png":
            raise DataError(f"--plot-out {str(plot_out)!r} must end in .png")
        nodes = None if support == "free" else parse_floats(support, "--support", 2)
        use_compilation_cache()
        from jaxpref.arena.leaderboard import fit_leaderboard

        try:
            result = fit_leaderboard(data, family=family, support=nodes, num_grid=num_grid, bootstrap=bootstrap, seed=seed,
                                     level=level, voter_column=voter_column, model_a_column=model_a_column,
                                     model_b_column=model_b_column, winner_column=winner_column)
        except DataError as error:
            message = str(error)
            for argument, flag in _FLAGS.items():
                message = message.replace(argument, flag)
            raise DataError(message) from None
        tables = {"--leaderboard-out": lambda: result.leaderboard, "--users-out": lambda: result.voters,
                  "--weights-out": result.vote_weights}
        for flag, path in outputs.items():
            if path is not None:
                write_table(tables[flag](), path, [data], flag)
        if plot_out is not None:
            from jaxpref.arena.plots import plot_leaderboard

            plot_leaderboard(result, plot_out)
    if json_output:
        typer.echo(json.dumps(_summary(result)))
    else:
        _print(result)


def _summary(result) -> dict:
    votes, fit = result.votes, result.fit
    board = result.leaderboard.astype({"model": str}).to_dict(orient="records")
    return {
        "num_votes": votes.num_votes, "num_voters": votes.num_voters, "num_models": votes.num_models,
        "converged": bool(fit.converged), "optimality_gap": fit.optimality_gap, "loglik": fit.objective,
        "num_iter": fit.num_iter, "eta_grid": result.eta_grid.tolist(), "eta_weights": result.eta_weights.tolist(),
        "mean_prob_attentive": float(result.voters["prob_attentive"].mean()), "leaderboard": board,
    }


def _print(result) -> None:
    from rich.console import Console
    from rich.table import Table

    fit = result.fit
    table = Table(title=f"{result.votes.num_votes} votes, {result.votes.num_voters} voters, "
                        f"{result.votes.num_models} models")
    for name in ("rank", "model", "elo", "95% CI", "theta", "se", "votes"):
        table.add_column(name, justify="left" if name == "model" else "right")
    for row in result.leaderboard.itertuples():
        table.add_row(str(row.rank), str(row.model), f"{row.elo:.1f}", f"[{row.elo_lower:.1f}, {row.elo_upper:.1f}]",
                      f"{row.theta:+.3f}", f"{row.se_sandwich:.3f}", str(row.num_votes))
    console = Console()
    console.print(table)
    status = "converged" if fit.converged else "NOT converged"
    console.print(f"{status}: certificate {fit.optimality_gap:.2e} nats after {fit.num_iter} EM iterations; "
                  f"voters with P(attentive) >= 0.5: {(result.voters['prob_attentive'] >= 0.5).mean():.1%}")
