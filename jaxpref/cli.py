"""The ``jaxpref`` command line: simulate, fit, filter, demo.

Bad input exits with code 2 and a one-line message on stderr, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from jaxpref.data import DataError
from jaxpref.streaming import WRITABLE_FORMATS, can_stream, filter_stream, stream_counts

app = typer.Typer(
    name="jaxpref",
    help="Users' attentiveness in comparison-mode preference data: simulate, fit EM, filter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)
stdout = Console()


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turns bad-input errors into a one-line message and exit code 2."""
    try:
        yield
    except (DataError, FileNotFoundError, typer.BadParameter) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None


def parse_floats(text: str | None, option: str, count: int | None = None) -> tuple[float, ...] | None:
    """``"8,2"`` -> ``(8.0, 2.0)``; a `DataError` naming the option when it does not parse."""
    if text is None:
        return None
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        raise DataError(f"{option} {text!r} must be comma-separated numbers, e.g. 8,2") from None
    if count is not None and len(values) != count:
        raise DataError(f"{option} {text!r} must have {count} comma-separated numbers")
    return values


def parse_mu(text: str | None) -> Any:
    """``--mu``: a number, ``free``, numbers per group (``0.6,0.9``) or ``group=mu`` pairs."""
    if text is None or text == "free":
        return text
    if "=" in text:
        pairs = dict(part.split("=", 1) for part in text.split(","))
        return {key: parse_floats(value, "--mu", 1)[0] for key, value in pairs.items()}
    values = parse_floats(text, "--mu")
    return values[0] if len(values) == 1 else list(values)


def fit_options(
    family: str,
    support: str | None,
    mu: str | None,
    mu_prior: str | None,
    p_column: str | None,
    group_column: str | None,
    num_grid: int,
    threshold: float,
    restarts: int,
    seed: int,
    dtype: str,
    user_column: str,
    label_column: str,
    method: str,
) -> dict[str, Any]:
    """Keyword arguments of `jaxpref.fit_attentiveness` from CLI strings."""
    return {
        "family": family,
        "support": parse_floats(support, "--support", 2),
        "mu": parse_mu(mu),
        "mu_prior": parse_floats(mu_prior, "--mu-prior", 2),
        "p_column": p_column,
        "group_column": group_column,
        "num_grid": num_grid,
        "threshold": threshold,
        "num_restarts": restarts,
        "seed": seed,
        "dtype": dtype,
        "user_column": user_column,
        "label_column": label_column,
        "method": method,
    }


def run_fit(data: Any, options: dict[str, Any], quiet: bool = False):
    """Fits with a progress spinner on stderr; warnings are shown as one line each."""
    from jaxpref.estimator import fit_attentiveness

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with console.status("Fitting EM (the first fit of a shape compiles)...", spinner="dots") if not quiet else contextlib.nullcontext():
            result = fit_attentiveness(data, **options)
    for warning in caught:
        console.print(f"[yellow]warning:[/yellow] {warning.message}")
    if not quiet:
        console.print(f"fitted in {time.perf_counter() - start:.1f} s ({result.num_iter} EM iterations)")
    return result


# Typer options shared by fit and filter (one definition each).
FamilyOption = typer.Option("two_point", "--family", help="point | two_point | beta | npmle")
SupportOption = typer.Option(None, "--support", help="fixed two_point support lo,hi")
MuOption = typer.Option(None, "--mu", help="known gap (0.74), 'free', per group (0.6,0.9 or a=0.6,b=0.9)")
MuPriorOption = typer.Option(None, "--mu-prior", help="Beta prior a,b on mu (default 8,2 when --mu is absent)")
PColumnOption = typer.Option(None, "--p-column", help="column of per-label p (replaces mu)")
GroupColumnOption = typer.Option(None, "--group-column", help="column of groups, one mu per group")
GridOption = typer.Option(64, "--num-grid", help="grid size for beta and npmle")
ThresholdOption = typer.Option(0.5, "--threshold", help="tau in P(eta >= tau)")
RestartsOption = typer.Option(4, "--restarts", help="EM starts run together (vmap)")
SeedOption = typer.Option(0, "--seed")
DtypeOption = typer.Option("float32", "--dtype", help="float32 | float64")
UserColumnOption = typer.Option("user", "--user-column")
LabelColumnOption = typer.Option("label", "--label-column")
MethodOption = typer.Option("squarem", "--method", help="squarem (accelerated EM) | em (plain EM)")


def print_fit(result) -> None:
    """A readable table of the fitted parameters and diagnostics."""
    table = Table(title=f"jaxpref EM fit: family={result.family}, mu mode={result.mu_mode}")
    table.add_column("parameter")
    table.add_column("estimate", justify="right")
    table.add_column("std. error", justify="right")
    errors = result.standard_errors
    params = result.params
    rows: list[tuple[str, Any, str]] = []
    if isinstance(params["mu"], dict):
        rows += [(f"mu[{group}]", value, f"mu[{index}]") for index, (group, value) in enumerate(params["mu"].items())]
    elif params["mu"] is not None:
        rows.append(("mu", params["mu"], "mu[0]"))
    if result.family == "point":
        rows.append(("eta", params["support"][0], "eta"))
    if result.family == "two_point":
        rows += [("eta_lo", params["support"][0], "eta_lo"), ("eta_hi", params["support"][1], "eta_hi")]
        rows.append(("weight_hi", params["weights"][1], "weight_hi"))
    if result.family == "beta":
        rows += [("alpha", params["alpha"], "alpha"), ("beta", params["beta"], "beta")]
    for name, value, error_key in rows:
        error = errors.get(error_key)
        table.add_row(name, f"{value:.4f}", "fixed" if error is None else f"{error:.4f}")
    stdout.print(table)
    if result.family == "npmle":
        weights = params["weights"]
        support = [(g, w) for g, w in zip(params["eta_grid"], weights) if w > 1e-3]
        stdout.print("npmle nodes with weight > 0.001: " + ", ".join(f"{g:.2f}:{w:.3f}" for g, w in support))
    stdout.print(
        f"users {result.data.num_users:,}  labels {result.data.num_labels:,}  loglik {result.loglik:.2f}  "
        f"BIC {result.bic:.2f}  iterations {result.num_iter}  converged {result.converged}"
    )


def table_format(path: Path) -> str:
    """``parquet``, ``csv`` or ``jsonl`` from an output path's suffix, checked before any work."""
    formats = {".parquet": "parquet", ".pq": "parquet", ".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl"}
    suffix = path.suffix.lower()
    if suffix not in formats:
        raise DataError(f"output {str(path)!r} has an unknown format {suffix!r}: use .parquet, .csv or .jsonl")
    return formats[suffix]


def write_table(frame, path: Path) -> None:
    """Writes a DataFrame as parquet, CSV or JSONL by the file suffix."""
    kind = table_format(path)
    if kind == "parquet":
        frame.to_parquet(path, index=False)
    elif kind == "csv":
        frame.to_csv(path, index=False)
    else:
        frame.to_json(path, orient="records", lines=True)


@app.command()
def simulate(
    users: int = typer.Option(1000, "--users", help="number of users m"),
    labels: int = typer.Option(20, "--labels", help="labels per user n (mean when --poisson)"),
    mu: str = typer.Option("0.74", "--mu", help="gap, or one per group: 0.6,0.9"),
    family: str = typer.Option("two_point", "--family", help="true P_eta: point | two_point | beta"),
    eta: float = typer.Option(0.5, "--eta", help="point family: everyone's eta"),
    support: str = typer.Option("0.1,0.9", "--support", help="two_point support lo,hi"),
    weight_hi: float = typer.Option(0.4, "--weight-hi", help="two_point share of attentive users"),
    alpha: float = typer.Option(3.0, "--alpha"),
    beta: float = typer.Option(5.0, "--beta"),
    poisson: bool = typer.Option(False, "--poisson", help="labels per user 1 + Poisson(n - 1)"),
    reward_gap: str | None = typer.Option(None, "--reward-gap", help="per-label p = sigmoid(N(mean, sd)): mean,sd"),
    seed: int = typer.Option(0, "--seed"),
    out: Path = typer.Option(..., "--out", help="labels file (.parquet/.csv/.jsonl)"),
    truth_out: Path | None = typer.Option(None, "--truth-out", help="per-user true eta file"),
) -> None:
    """Simulate users' labels from the attentiveness model."""
    import jax

    from jaxpref.simulate import simulate as simulate_labels

    with user_errors():
        table_format(out)
        if truth_out is not None:
            table_format(truth_out)
        mu_values = parse_floats(mu, "--mu")
        family_options: dict[str, Any] = {}
        if family == "point":
            family_options["eta"] = eta
        elif family == "two_point":
            family_options.update(support=parse_floats(support, "--support", 2), weight_hi=weight_hi)
        elif family == "beta":
            family_options.update(alpha=alpha, beta=beta)
        else:
            raise DataError(f"--family {family!r} must be point, two_point or beta for simulate")
        sim = simulate_labels(
            jax.random.key(seed),
            users,
            labels,
            family=family,
            mu=mu_values[0] if len(mu_values) == 1 else mu_values,
            label_count="poisson" if poisson else "fixed",
            reward_gap=parse_floats(reward_gap, "--reward-gap", 2),
            **family_options,
        )
        write_table(sim.frame, out)
        if truth_out is not None:
            write_table(sim.truth, truth_out)
    console.print(f"wrote {len(sim.frame):,} labels of {users:,} users to {out}")


@app.command()
def fit(
    data: Path = typer.Argument(
        ..., help="labels file (or directory of parquet files) with columns user,label[,p][,group]"
    ),
    family: str = FamilyOption,
    support: str | None = SupportOption,
    mu: str | None = MuOption,
    mu_prior: str | None = MuPriorOption,
    p_column: str | None = PColumnOption,
    group_column: str | None = GroupColumnOption,
    num_grid: int = GridOption,
    threshold: float = ThresholdOption,
    restarts: int = RestartsOption,
    seed: int = SeedOption,
    dtype: str = DtypeOption,
    user_column: str = UserColumnOption,
    label_column: str = LabelColumnOption,
    method: str = MethodOption,
    users_out: Path | None = typer.Option(None, "--users-out", help="write the per-user table here"),
    json_output: bool = typer.Option(False, "--json", help="print one JSON object on stdout"),
) -> None:
    """Fit the attentiveness EM and print the estimates.

    Parquet, CSV and JSONL inputs (a file, or a directory of parquet files) are streamed into
    per-user counts in batches, so memory grows with users, not labels; per-label p needs the rows.
    """
    with user_errors():
        if users_out is not None:
            table_format(users_out)
        options = fit_options(
            family, support, mu, mu_prior, p_column, group_column, num_grid, threshold, restarts, seed, dtype,
            user_column, label_column, method,
        )
        if p_column is None and can_stream(data):
            # Per-user counts suffice here: read them in batches, never holding the label rows.
            data = stream_counts(data, user_column=user_column, label_column=label_column,
                                 group_column=group_column, progress=not json_output)
        result = run_fit(data, options, quiet=json_output)
        if users_out is not None:
            write_table(result.users, users_out)
    if json_output:
        typer.echo(json.dumps(result.summary()))
    else:
        print_fit(result)


@app.command("filter")
def filter_command(
    data: Path = typer.Argument(..., help="labels file with columns user,label[,p][,group]"),
    out: Path = typer.Option(..., "--out", help="kept labels (.parquet/.csv/.jsonl), every input column kept"),
    rule: str = typer.Option("eta_map", "--rule", help="eta_map | eta_mean | prob_attentive | top_fraction"),
    cutoff: float | None = typer.Option(None, "--cutoff", help="eta cut-off for eta_map/eta_mean (default --threshold)"),
    level: float = typer.Option(0.9, "--level", help="prob_attentive: keep users with P(eta >= tau) >= level"),
    fraction: float = typer.Option(0.5, "--fraction", help="top_fraction: share of users kept"),
    weights: bool = typer.Option(False, "--weights", help="add label_attentive, flip_rate, eta_mean columns"),
    family: str = FamilyOption,
    support: str | None = SupportOption,
    mu: str | None = MuOption,
    mu_prior: str | None = MuPriorOption,
    p_column: str | None = PColumnOption,
    group_column: str | None = GroupColumnOption,
    num_grid: int = GridOption,
    threshold: float = ThresholdOption,
    restarts: int = RestartsOption,
    seed: int = SeedOption,
    dtype: str = DtypeOption,
    user_column: str = UserColumnOption,
    label_column: str = LabelColumnOption,
    method: str = MethodOption,
) -> None:
    """Fit EM, then keep the labels of the users a rule selects.

    Parquet, CSV and JSONL inputs written to parquet or CSV are streamed in two passes (counts,
    then the kept rows), so memory grows with users, not labels.
    """
    from jaxpref.posterior import check_rule, filter_labels, select_users

    with user_errors():
        table_format(out)
        check_rule(rule, cutoff=cutoff, level=level, fraction=fraction)
        options = fit_options(
            family, support, mu, mu_prior, p_column, group_column, num_grid, threshold, restarts, seed, dtype,
            user_column, label_column, method,
        )
        columns = {"user_column": user_column, "label_column": label_column, "group_column": group_column}
        if p_column is None and can_stream(data) and table_format(out) in WRITABLE_FORMATS:
            # Two passes over the file, never holding its rows: counts -> fit -> kept rows.
            result = run_fit(stream_counts(data, **columns), options)
            keep_user = select_users(result.users, rule, threshold=result.threshold if cutoff is None else cutoff,
                                     level=level, fraction=fraction)
            num_kept_users = int(keep_user.sum())
            num_kept_labels = filter_stream(data, out, result, keep_user, weights=weights, **columns)
        else:
            result = run_fit(data, options)
            kept = filter_labels(result, rule, threshold=cutoff, level=level, fraction=fraction, weights=weights)
            write_table(kept, out)
            num_kept_users, num_kept_labels = kept[result.data.user_column].nunique(), len(kept)
    console.print(
        f"kept {num_kept_users:,} of {result.data.num_users:,} users and {num_kept_labels:,} of "
        f"{result.data.num_labels:,} labels ({rule}); wrote {out}"
    )


@app.command()
def demo(
    users: int = typer.Option(2000, "--users"),
    labels: int = typer.Option(20, "--labels"),
    mu: float = typer.Option(0.8, "--mu"),
    seed: int = typer.Option(0, "--seed"),
) -> None:
    """Simulate users, fit EM, filter, and print how well attentive users were found."""
    from jaxpref.demo import run_demo

    with user_errors():
        run_demo(users=users, labels=labels, mu=mu, seed=seed, console=stdout)


def _mount_subcommands() -> None:
    from jaxpref.bayes_cli import compare_command
    from jaxpref.contracts.cli import app as contracts_app

    app.command("compare")(compare_command)
    app.add_typer(contracts_app, name="contracts", help="Monitoring and incentive contracts for annotators.")


_mount_subcommands()


def main() -> None:
    """Entry point of the ``jaxpref`` script."""
    app(prog_name="jaxpref")


if __name__ == "__main__":
    sys.exit(main())
