"""``jaxpref compare``: rank P_eta families by PSIS-LOO, WAIC or BIC.

A plain function; the main app registers it with ``app.command("compare")(compare_command)``.
Bad input exits with code 2 and a one-line message on stderr.
"""

from __future__ import annotations

import json
from pathlib import Path

import typer

DEFAULT_FAMILIES = "point,two_point,beta,npmle"


def compare_command(
    data: Path = typer.Argument(..., help="labels file with columns user,label[,p][,group]"),
    families: str = typer.Option(DEFAULT_FAMILIES, "--families", help="comma-separated candidates"),
    method: str = typer.Option("loo", "--method", help="loo | waic (NumPyro NUTS) | bic (EM)"),
    mu: str | None = typer.Option(None, "--mu", help="known gap (0.74), 'free', per group (0.6,0.9 or a=0.6,b=0.9)"),
    mu_prior: str | None = typer.Option(None, "--mu-prior", help="Beta prior a,b on mu (default 8,2 when --mu is absent)"),
    support: str | None = typer.Option(None, "--support", help="fixed two_point support lo,hi"),
    num_grid: int = typer.Option(32, "--num-grid", help="grid size for beta and npmle"),
    samples: int = typer.Option(500, "--samples", help="NUTS draws per chain (loo/waic)"),
    warmup: int = typer.Option(500, "--warmup", help="NUTS warm-up steps per chain (loo/waic)"),
    chains: int = typer.Option(4, "--chains", help="NUTS chains, vectorised (loo/waic)"),
    seed: int = typer.Option(0, "--seed"),
    p_column: str | None = typer.Option(None, "--p-column", help="column of per-label p (replaces mu)"),
    group_column: str | None = typer.Option(None, "--group-column", help="column of groups, one mu per group"),
    user_column: str = typer.Option("user", "--user-column"),
    label_column: str = typer.Option("label", "--label-column"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
) -> None:
    """Fit each P_eta family and rank them, best first."""
    from rich.console import Console

    from jaxpref.cli import check_seed, parse_floats, parse_mu, use_compilation_cache, user_errors

    with user_errors():
        mu_value, prior = parse_mu(mu), parse_floats(mu_prior, "--mu-prior", 2)
        check_seed(seed)
        use_compilation_cache()
        from jaxpref.compare import compare, ranking_json

        status = Console(stderr=True).status(
            f"Comparing {families} by {method} (NUTS for loo/waic can take minutes; --method bic is fast)...",
            spinner="dots")
        with status:
            table = compare(
                data,
                families,
                method,
                mu=mu_value,
                mu_prior=prior,
                support=parse_floats(support, "--support", 2),
                num_grid=num_grid,
                seed=seed,
                num_warmup=warmup,
                num_samples=samples,
                num_chains=chains,
                user_column=user_column,
                label_column=label_column,
                p_column=p_column,
                group_column=group_column,
            )
    if json_output:
        typer.echo(json.dumps(ranking_json(table)))
        return
    from rich.table import Table

    better = "higher" if table.attrs["scale"] == "elpd" else "lower"
    view = Table(title=f"jaxpref compare: method={method} ({better} score is better)")
    for column in ("family", "score", "se", "diff", "diff_se", "weight", "tied_with_best"):
        view.add_column(column, justify="left" if column == "family" else "right")
    for row in table.itertuples():
        view.add_row(
            row.family, f"{row.score:.2f}", f"{row.se:.2f}", f"{row.diff:.2f}", f"{row.diff_se:.2f}",
            f"{row.weight:.3f}", "tie" if row.tied_with_best else "",
        )
    Console().print(view)
