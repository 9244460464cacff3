"""``jaxpref bayes`` (fit the NumPyro model) and the model specifications of ``jaxpref compare``.

    jaxpref bayes labels.csv --family beta --users users.csv --netcdf fit.nc --ppc ppc.png
    jaxpref compare labels.csv --model one=beta --model topic=beta,group=topic --evidence
    jaxpref compare labels.csv --spec-file models.toml

A model on the command line is ``NAME=FAMILY[,key=value...]`` with keys ``group`` (group
column: one mu per group), ``p`` (per-label p column), ``mu`` (``0.8``, ``free``, or one per
group ``0.6:0.9``), ``mu_prior`` (``8:2``), ``support`` (``0.1:0.9``) and ``grid``. A spec
file (``.toml`` or ``.json``) maps names to tables of `jaxpref.bayes.compare.SPEC_KEYS`.

The main CLI (`jaxpref.cli`) mounts ``app`` (``bayes``) and ``compare_app`` (``compare``) as
lazily loaded commands; the options are parsed here before JAX is imported.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path
from typing import Any

import typer

from jaxpref.errors import DataError

__all__ = ["app", "compare_app", "parse_model", "read_spec_file", "run_compare"]

app = typer.Typer(help="Fit the Bayesian model (NumPyro NUTS).", no_args_is_help=True, pretty_exceptions_enable=False)
compare_app = typer.Typer(help="Rank model specifications or P_eta families.", no_args_is_help=True,
                          pretty_exceptions_enable=False)

# Options shared by ``bayes`` and ``compare``.
DATA = typer.Argument(..., help="labels file with columns user,label[,p][,group]")
MU = typer.Option(None, "--mu", help="known gap (0.74), 'free', per group (0.6,0.9 or a=0.6,b=0.9)")
MU_PRIOR = typer.Option(None, "--mu-prior", help="Beta prior a,b on mu (default 8,2 when --mu is absent)")
SUPPORT = typer.Option(None, "--support", help="fixed two_point support lo,hi")
NUM_GRID = typer.Option(64, "--num-grid", help="grid size for beta and npmle")
SAMPLES = typer.Option(500, "--samples", help="NUTS draws per chain")
WARMUP = typer.Option(500, "--warmup", help="NUTS warm-up steps per chain")
CHAINS = typer.Option(4, "--chains", help="NUTS chains, vectorised")
SEED = typer.Option(0, "--seed")
P_COLUMN = typer.Option(None, "--p-column", help="column of per-label p (replaces mu)")
GROUP_COLUMN = typer.Option(None, "--group-column", help="column of groups, one mu per group")
USER_COLUMN = typer.Option("user", "--user-column")
LABEL_COLUMN = typer.Option("label", "--label-column")
JSON_OUTPUT = typer.Option(False, "--json", help="print one JSON object on stdout")

#: Short keys of ``--model`` -> `SPEC_KEYS`.
MODEL_KEYS = {"group": "group_column", "p": "p_column", "mu": "mu", "mu_prior": "mu_prior", "support": "support",
              "grid": "num_grid"}


def _pair(text: str, flag: str) -> tuple[float, float]:
    try:
        lo, hi = (float(part) for part in text.split(":"))
    except ValueError:
        raise DataError(f"{flag} {text!r} must be two numbers a:b (e.g. 8:2)") from None
    return lo, hi


def parse_model(text: str) -> tuple[str, dict[str, Any]]:
    """``"topic=beta,group=topic"`` -> ``("topic", {"family": "beta", "group_column": "topic"})``."""
    name, _, rest = text.partition("=")
    parts = [part.strip() for part in rest.split(",")]
    if not name.strip() or not parts[0]:
        raise DataError(f"--model {text!r} must be NAME=FAMILY[,key=value...] (e.g. topic=beta,group=topic)")
    spec: dict[str, Any] = {"family": parts[0]}
    for part in parts[1:]:
        key, _, value = part.partition("=")
        if key not in MODEL_KEYS or not value:
            raise DataError(f"--model {text!r}: {part!r} must be key=value with key one of {', '.join(MODEL_KEYS)}")
        flag = f"--model {name}: {key}"
        if key in ("mu_prior", "support"):
            spec[MODEL_KEYS[key]] = _pair(value, flag)
        elif key == "mu":
            values = value.split(":")
            try:
                spec["mu"] = value if value == "free" else (
                    float(values[0]) if len(values) == 1 else [float(v) for v in values])
            except ValueError:
                raise DataError(f"{flag}={value!r} must be a number, 'free', or one per group a:b") from None
        elif key == "grid":
            if not value.isdigit():
                raise DataError(f"{flag}={value!r} must be a whole number of grid nodes")
            spec["num_grid"] = int(value)
        else:
            spec[MODEL_KEYS[key]] = value
    return name.strip(), spec


def read_spec_file(path: Path) -> dict[str, dict[str, Any]]:
    """``{name: spec}`` from a ``.toml`` or ``.json`` file (lists become tuples)."""
    text = path.read_text()
    if path.suffix == ".toml":
        import tomllib

        try:
            models = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise DataError(f"--spec-file {path}: not valid TOML ({error})") from None
    elif path.suffix == ".json":
        try:
            models = json.loads(text)
        except json.JSONDecodeError as error:
            raise DataError(f"--spec-file {path}: not valid JSON ({error})") from None
    else:
        raise DataError(f"--spec-file {path}: give a .toml or .json file")
    if not isinstance(models, dict) or not all(isinstance(spec, dict) for spec in models.values()):
        raise DataError(f"--spec-file {path} must map model names to tables of options (family = \"beta\", ...)")
    return {name: {key: tuple(value) if isinstance(value, list) and key != "mu" else value
                   for key, value in spec.items()} for name, spec in models.items()}


def run_compare(data: Path, families: str | None, models: list[str] | None, spec_file: Path | None,
                evidence: bool, json_output: bool, console: Any, stdout: Any, **options: Any) -> None:
    """The body of ``jaxpref compare``: fits with progress, prints the table, its explanation and problems."""
    from jaxpref.bayes.compare import compare_models, ranking_json

    specs = dict(parse_model(text) for text in models or [])
    if spec_file is not None:
        specs.update(read_spec_file(spec_file))
    if specs and families is not None:
        raise DataError("--families and --model/--spec-file both name the candidates: give one of them")
    if specs and len(specs) < 2:
        raise DataError("--model/--spec-file must give at least two models to compare")
    method = options.pop("method")
    with console.status(f"Comparing by {method}...", spinner="dots") as status:
        def progress(line: str) -> None:
            status.update(f"compare: {line}...")
            console.log(line)

        with warnings.catch_warnings():
            # The problems are printed below the table, once, with their fixes.
            warnings.simplefilter("ignore", UserWarning)
            result = compare_models(
                data, specs or None, method, families=None if specs else families, evidence=evidence,
                progress=progress, **options,
            )
    table = result.table
    if json_output:
        typer.echo(json.dumps(ranking_json(table)))
        return
    from rich.table import Table

    better = "higher" if table.attrs["scale"] == "elpd" else "lower"
    view = Table(title=f"jaxpref compare: method={method} ({better} score is better)")
    columns = ["model", "family", "score", "se", "diff", "diff_se", "weight", "pareto_k_max", "ppc_p_value"]
    columns += [column for column in ("log_bf",) if column in table]
    for column in columns + ["tied_with_best"]:
        view.add_column(column, justify="left" if column in ("model", "family") else "right")
    for row in table.to_dict(orient="records"):
        cells = [str(row["model"]), str(row["family"])]
        cells += ["" if not math.isfinite(row[column]) else f"{row[column]:.3f}" if column in
                  ("weight", "pareto_k_max", "ppc_p_value") else f"{row[column]:.2f}" for column in columns[2:]]
        view.add_row(*cells, "tie" if row["tied_with_best"] else "")
    stdout.print(view)
    if table.attrs["scale"] == "elpd":
        stdout.print(f"[dim]{table.attrs['explanation']}[/dim]")
    for problem in result.problems:
        stdout.print(f"[yellow]warning:[/yellow] {problem}")


def _check_file(path: Path | None, suffix: str, flag: str, data: Path) -> None:
    """An output file: the right suffix, in an existing directory, never the input."""
    if path is None:
        return
    if path.suffix != suffix:
        raise DataError(f"{flag} {str(path)!r} must end in {suffix}")
    if not path.parent.is_dir():
        raise DataError(f"{flag} {str(path)!r}: directory {str(path.parent)!r} does not exist: create it first")
    if path.resolve() == data.resolve():
        raise DataError(f"{flag} {str(path)!r} is the input: write to another file")


@compare_app.command("compare")
def compare_command(
    data: Path = DATA,
    families: str | None = typer.Option(None, "--families", help="comma-separated candidates (default: all)"),
    model: list[str] | None = typer.Option(None, "--model", help="NAME=FAMILY[,group=COL,mu=...,support=lo:hi] (repeat)"),
    spec_file: Path | None = typer.Option(None, "--spec-file", help=".toml/.json mapping model names to options"),
    evidence: bool = typer.Option(False, "--evidence", help="also Bayes factors by bridge sampling (loo/waic)"),
    method: str = typer.Option("loo", "--method", help="loo | waic (NumPyro NUTS) | bic (EM)"),
    mu: str | None = MU,
    mu_prior: str | None = MU_PRIOR,
    support: str | None = SUPPORT,
    num_grid: int = NUM_GRID,
    samples: int = SAMPLES,
    warmup: int = WARMUP,
    chains: int = CHAINS,
    seed: int = SEED,
    p_column: str | None = P_COLUMN,
    group_column: str | None = GROUP_COLUMN,
    user_column: str = USER_COLUMN,
    label_column: str = LABEL_COLUMN,
    json_output: bool = JSON_OUTPUT,
) -> None:
    """Rank model specifications (--model/--spec-file) or P_eta families, best first."""
    from jaxpref.cli import check_seed, console, parse_floats, parse_mu, stdout, use_compilation_cache, user_errors
    from jaxpref.options import FAMILIES

    with user_errors():
        mu_value, prior = parse_mu(mu), parse_floats(mu_prior, "--mu-prior", 2)
        check_seed(seed)
        use_compilation_cache()
        run_compare(
            data, families if families or model or spec_file else ",".join(FAMILIES), model, spec_file, evidence,
            json_output, console, stdout, method=method, mu=mu_value, mu_prior=prior,
            support=parse_floats(support, "--support", 2), num_grid=num_grid, seed=seed, num_warmup=warmup,
            num_samples=samples, num_chains=chains, user_column=user_column, label_column=label_column,
            p_column=p_column, group_column=group_column,
        )


@app.command("bayes")
def bayes_command(
    data: Path = DATA,
    family: str = typer.Option("two_point", "--family", help="point | two_point | beta | npmle"),
    mu: str | None = MU,
    mu_prior: str | None = MU_PRIOR,
    support: str | None = SUPPORT,
    num_grid: int = NUM_GRID,
    samples: int = SAMPLES,
    warmup: int = WARMUP,
    chains: int = CHAINS,
    target_accept: float = typer.Option(0.9, "--target-accept", help="NUTS target acceptance (raise on divergences)"),
    seed: int = SEED,
    p_column: str | None = P_COLUMN,
    group_column: str | None = GROUP_COLUMN,
    user_column: str = USER_COLUMN,
    label_column: str = LABEL_COLUMN,
    users_out: Path | None = typer.Option(None, "--users", help="write the users table (.csv or .parquet)"),
    netcdf_out: Path | None = typer.Option(None, "--netcdf", help="write the arviz InferenceData (.nc)"),
    ppc_out: Path | None = typer.Option(None, "--ppc", help="write the posterior predictive check plot (.png)"),
    json_output: bool = JSON_OUTPUT,
) -> None:
    """Fit the Bayesian model by NUTS: parameters, diagnostics, predictive check, per-user intervals."""
    from jaxpref.cli import (
        check_seed, console, parse_floats, parse_mu, stdout, use_compilation_cache, user_errors,
    )
    from jaxpref.io.atomic import atomic_paths, write_table

    with user_errors():
        mu_value, prior = parse_mu(mu), parse_floats(mu_prior, "--mu-prior", 2)
        fixed_support = parse_floats(support, "--support", 2)
        check_seed(seed)
        for path, suffix, flag in ((netcdf_out, ".nc", "--netcdf"), (ppc_out, ".png", "--ppc")):
            _check_file(path, suffix, flag, data)
        use_compilation_cache()
        from jaxpref.bayes import checks
        from jaxpref.bayes.model import PARAMETER_SITES, fit_bayes

        with console.status(f"NUTS: {chains} chains x ({warmup} warm-up + {samples} draws), {family}...",
                            spinner="dots"), warnings.catch_warnings():
            # The problems are printed below, once, with their fixes.
            warnings.simplefilter("ignore", checks.ConvergenceWarning)
            fit = fit_bayes(
                data, family=family, mu=mu_value, mu_prior=prior, support=fixed_support, num_grid=num_grid,
                num_warmup=warmup, num_samples=samples, num_chains=chains, target_accept=target_accept, seed=seed,
                user_column=user_column, label_column=label_column, p_column=p_column, group_column=group_column,
            )
        check = checks.predictive_check(fit.inference_data)
        if users_out is not None:
            write_table(fit.users, users_out, [data], "--users")
        if netcdf_out is not None:
            with atomic_paths([netcdf_out]) as (temporary,):
                fit.inference_data.to_netcdf(str(temporary))
        if ppc_out is not None:
            with atomic_paths([ppc_out]) as (temporary,):
                checks.plot_predictive_check(check, f"posterior predictive check: {family}").savefig(
                    temporary, format="png", dpi=120)
    parameters = [name for name in PARAMETER_SITES if name in fit.inference_data.posterior]
    problems = checks.convergence_problems(fit.inference_data, parameters)
    if json_output:
        summary = fit.summary.reset_index(names="parameter")
        typer.echo(json.dumps({
            "family": family, "summary": json.loads(summary.to_json(orient="records")),
            "ppc": json.loads(check.table.to_json(orient="records")), "num_divergences": fit.num_divergences,
            "problems": problems,
        }))
        return
    from rich.table import Table

    view = Table(title=f"jaxpref bayes: {family}, {fit.data.num_users} users")
    view.add_column("parameter", justify="left")
    for column in fit.summary.columns:
        view.add_column(column, justify="right")
    for name, row in fit.summary.iterrows():
        view.add_row(name, *(f"{value:.4g}" for value in row.to_numpy()))
    stdout.print(view)
    for row in check.table.itertuples():
        stdout.print(f"posterior predictive check, group {row.group}: chi2 {row.chi2:.2f}, p = {row.p_value:.3f}")
    for problem in problems:
        stdout.print(f"[yellow]warning:[/yellow] {problem}")
