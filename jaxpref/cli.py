"""The ``jaxpref`` command line: simulate, fit, filter, compare, contracts, demo.

Every failure the user can cause (bad data, options, paths; typer's usage errors too) exits with
code 2 and one line on stderr naming the flag or file and the fix, never a traceback. Options and
paths are checked before JAX is imported, so a rejected command returns at once; outputs are
written atomically (`jaxpref.io.atomic`). Compiled XLA executables are kept in a persistent cache
in the user's cache directory, and the traced programs beside them (`jaxpref.core.program_cache`),
so a second run skips tracing and compiling; set ``JAXPREF_COMPILATION_CACHE`` to another
directory, or to ``off`` to disable both.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import sys
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from typer.core import TyperGroup

from jaxpref.errors import DataError
from jaxpref.io.atomic import atomic_paths, check_format_holds, check_output, write_frame
from jaxpref.io.tables import reading, scan
# The choices are checked before JAX is imported: jaxpref.options needs only NumPy.
from jaxpref.options import FAMILIES, FitOptions


#: Click's exceptions, wherever this typer version takes click from (it may vendor it).
click_errors = sys.modules[typer.BadParameter.__module__]


class OneLineErrors(TyperGroup):
    """Usage errors (unknown option, bad value, missing argument) as one line and exit code 2; the
    ``contracts`` sub-app is loaded only when it is run (its package imports JAX)."""

    def list_commands(self, ctx: Any) -> list[str]:
        return [*super().list_commands(ctx), *LAZY_SUBAPPS]

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in LAZY_SUBAPPS:
            return super().get_command(ctx, name)
        import importlib

        target, help_text = LAZY_SUBAPPS[name]
        module, _, attribute = target.partition(":")
        command = typer.main.get_command(getattr(importlib.import_module(module), attribute or "app"))
        command.name, command.help = name, help_text
        return command

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            result = super().main(*args, standalone_mode=False, **kwargs)
        except click_errors.NoArgsIsHelpError:
            result = 2  # typer has printed the help
        except click_errors.UsageError as error:
            command = error.ctx.command_path if error.ctx else "jaxpref"
            typer.echo(f"error: {error.format_message()} (see `{command} --help`)", err=True)
            result = 2
        except click_errors.ClickException as error:
            typer.echo(f"error: {error.format_message()}", err=True)
            result = error.exit_code
        except typer.Abort:
            typer.echo("aborted", err=True)
            result = 130
        if standalone_mode:
            sys.exit(result or 0)
        return result


app = typer.Typer(
    name="jaxpref",
    help="Users' attentiveness in comparison-mode preference data: simulate, fit EM, filter.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=OneLineErrors,
)
console = Console(stderr=True)
stdout = Console()
#: Sub-apps loaded on first use: name -> (``module`` defining ``app``, or ``module:attribute``; help line).
LAZY_SUBAPPS = {"contracts": ("jaxpref.contracts.cli", "Monitoring and incentive contracts for annotators."),
                "bayes": ("jaxpref.bayes.cli", "Fit the Bayesian model (NumPyro NUTS): posteriors, checks, diagnostics."),
                "compare": ("jaxpref.bayes.cli:compare_app", "Rank model specifications or P_eta families, best first."),
                "arena": ("jaxpref.arena.cli", "Leaderboard from arena votes, with voters' attentiveness.")}

#: Library argument -> CLI flag, so that the library's messages name the flag on the command line.
FLAGS = {
    "user_column": "--user-column", "label_column": "--label-column", "p_column": "--p-column",
    "group_column": "--group-column", "num_restarts": "--restarts", "mu_prior": "--mu-prior", "mu": "--mu",
    "support": "--support", "num_grid": "--num-grid", "threshold": "--threshold", "seed": "--seed",
    "dtype": "--dtype", "method": "--method", "family": "--family", "group_ids": "--group-column",
}
#: An argument followed by "=", or a column argument anywhere ("mu" alone is also the Greek letter).
FLAG_PATTERN = re.compile(
    r"(?<![-\w])(\w+_column|" + "|".join(sorted(FLAGS, key=len, reverse=True)) + r")(=<name>|=|\b)"
)


def as_flags(message: str) -> str:
    """``pass user_column=<name>`` -> ``pass --user-column <name>``: the library's argument names as flags."""
    def flag(match: re.Match) -> str:
        name, tail = match.groups()
        if name not in FLAGS or (tail == "" and not name.endswith("_column")):
            return match.group(0)
        return FLAGS[name] + {"=<name>": " <name>", "=": " "}.get(tail, "")

    return FLAG_PATTERN.sub(flag, message)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turns bad-input errors into a one-line message and exit code 2."""
    try:
        yield
    except (DataError, FileNotFoundError, PermissionError, IsADirectoryError, NotADirectoryError,
            typer.BadParameter) as error:
        message = str(error).splitlines()[0] if str(error) else type(error).__name__
        typer.echo(f"error: {as_flags(message)}", err=True)
        raise typer.Exit(2) from None


def choice(value: str, choices: tuple[str, ...], flag: str) -> str:
    """``value`` if it is one of ``choices``, else a `DataError` naming the flag."""
    if value not in choices:
        raise DataError(f"{flag} {value!r} must be one of {', '.join(choices)}")
    return value


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
    """``--mu``: a number, ``free``, numbers per group (``0.6,0.9``) or ``group=mu`` pairs (``a=0.6``)."""
    if text is None or text == "free":
        return text
    if "=" in text:
        pairs = [part.split("=", 1) for part in text.split(",")]
        if any(len(pair) != 2 or not pair[0] for pair in pairs):
            raise DataError(f"--mu {text!r} must be group=mu pairs separated by commas, e.g. a=0.6,b=0.9")
        keys = [key for key, _ in pairs]
        if len(set(keys)) != len(keys):
            raise DataError(f"--mu {text!r} names a group twice: give one mu per group")
        return {key: parse_floats(value, "--mu", 1)[0] for key, value in pairs}
    values = parse_floats(text, "--mu")
    return values[0] if len(values) == 1 else list(values)


def check_seed(seed: int) -> int:
    """A seed JAX's keys accept."""
    if not -(2**63) <= seed < 2**63:
        raise DataError(f"--seed {seed} must be a 64-bit integer, in [-2^63, 2^63)")
    return seed


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
) -> FitOptions:
    """The `jaxpref.options.FitOptions` of the CLI's strings, checked without importing JAX (its
    messages name library arguments; `user_errors` shows them as flags)."""
    return FitOptions(
        family=family,
        support=parse_floats(support, "--support", 2),
        mu=parse_mu(mu),
        mu_prior=parse_floats(mu_prior, "--mu-prior", 2),
        p_column=p_column,
        group_column=group_column,
        num_grid=num_grid,
        threshold=threshold,
        num_restarts=restarts,
        seed=seed,
        dtype=dtype,
        user_column=user_column,
        label_column=label_column,
        method=method,
    )


def use_compilation_cache() -> None:
    """Points JAX's persistent compilation cache at the user's cache directory (``JAXPREF_COMPILATION_CACHE``
    names another directory, or ``off`` disables it). Call before the first compile."""
    setting = os.environ.get("JAXPREF_COMPILATION_CACHE", "")
    if setting.lower() in ("off", "0", "false", "no"):
        return
    import jax

    if jax.config.jax_compilation_cache_dir:
        return  # the user configured JAX's cache themselves
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    path = setting or os.path.join(base, "jaxpref", "xla")
    with contextlib.suppress(OSError):
        os.makedirs(path, exist_ok=True)
        jax.config.update("jax_compilation_cache_dir", path)
        # Cache every executable: a fit's many small ones each compile in well under JAX's 1 s default.
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


def run_fit(data: Any, options: FitOptions, quiet: bool = False):
    """Fits with a progress spinner on stderr; warnings are shown as one line each."""
    use_compilation_cache()
    from jaxpref.estimator import fit_attentiveness

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        status = console.status("Fitting EM (the first fit of a shape compiles)...", spinner="dots")
        with status if not quiet else contextlib.nullcontext():
            result = fit_attentiveness(data, options)
    for warning in caught:
        console.print(f"[yellow]warning:[/yellow] {as_flags(str(warning.message))}")
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
RestartsOption = typer.Option(4, "--restarts", help="EM starts run together (vmap); a concave fit runs one")
SeedOption = typer.Option(0, "--seed")
DtypeOption = typer.Option("float32", "--dtype", help="float32 | float64")
UserColumnOption = typer.Option("user", "--user-column")
LabelColumnOption = typer.Option("label", "--label-column")
MethodOption = typer.Option("squarem", "--method", help="squarem (accelerated EM) | em (plain EM)")


def print_fit(result) -> None:
    """A readable table of the fitted parameters and diagnostics."""
    from rich.table import Table

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
    rows += result.config.family.table_rows(params)
    for name, value, error_key in rows:
        error = errors.get(error_key)
        table.add_row(name, f"{value:.4f}", "fixed" if error is None else f"{error:.4f}")
    stdout.print(table)
    stdout.print(
        f"users {result.data.num_users:,}  labels {result.data.num_labels:,}  loglik {result.loglik:.2f}  "
        f"BIC {result.bic:.2f}  iterations {result.num_iter}  converged {result.converged}"
    )


@app.command()
def simulate(
    users: int = typer.Option(1000, "--users", help="number of users m"),
    labels: int = typer.Option(20, "--labels", help="labels per user n (mean when --poisson)"),
    mu: str = typer.Option("0.74", "--mu", help="gap, or one per group: 0.6,0.9"),
    family: str = typer.Option("two_point", "--family", help="true P_eta: point | two_point | beta | npmle (nodes --support, equal weights)"),
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
    group_column: str = typer.Option("group", "--group-column", help="group column name (with several --mu)"),
) -> None:
    """Simulate users' labels from the attentiveness model (--out and --truth-out: both or neither)."""
    with user_errors():
        outputs = [(out, "--out")] + ([(truth_out, "--truth-out")] if truth_out else [])
        kinds = [check_output(path, flag=flag) for path, flag in outputs]
        if truth_out is not None and Path(truth_out).resolve() == Path(out).resolve():
            raise DataError("--truth-out is the same file as --out: give the truth its own file")
        if users < 1 or labels < 1:
            raise DataError(f"--users {users} and --labels {labels} must both be at least 1")
        mu_values = parse_floats(mu, "--mu")
        choice(family, FAMILIES, "--family")
        # Each family takes the options it needs (jaxpref.core.families.base.Family.truth).
        family_options = dict(eta=eta, support=parse_floats(support, "--support"), weight_hi=weight_hi, alpha=alpha, beta=beta)
        check_seed(seed)
        reward = parse_floats(reward_gap, "--reward-gap", 2)
        use_compilation_cache()
        import jax

        from jaxpref.simulate import simulate as simulate_labels

        sim = simulate_labels(
            jax.random.key(seed),
            users,
            labels,
            family=family,
            mu=mu_values[0] if len(mu_values) == 1 else mu_values,
            label_count="poisson" if poisson else "fixed",
            reward_gap=reward,
            **family_options,
        )
        frame = sim.frame.rename(columns={"group": group_column}) if group_column != "group" else sim.frame
        tables = [frame, sim.truth][: len(outputs)]
        with reading(out, "write"), atomic_paths([path for path, _ in outputs]) as temporaries:
            for table, temporary, kind in zip(tables, temporaries, kinds):
                write_frame(table, temporary, kind)
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

    Parquet, CSV and JSONL inputs (a file, or a directory of parquet files) are aggregated into
    per-user counts without holding the rows, so memory grows with users, not labels; per-label p
    needs the rows.
    """
    with user_errors():
        options = fit_options(
            family, support, mu, mu_prior, p_column, group_column, num_grid, threshold, restarts, seed, dtype,
            user_column, label_column, method,
        )
        source = data
        if users_out is not None:
            check_output(users_out, [source], "--users-out")
        if p_column is None:
            # Per-user counts suffice here: aggregate them without holding the label rows.
            from jaxpref.scale.streaming import stream_counts

            data = stream_counts(data, user_column=user_column, label_column=label_column,
                                 group_column=group_column, progress=not json_output)
        result = run_fit(data, options, quiet=json_output)
        if users_out is not None:
            from jaxpref.io.atomic import write_table

            write_table(result.users, users_out, [source], "--users-out")
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

    The input is streamed in two passes (counts, then the kept rows), so memory grows with users,
    not labels (per-label p loads the rows). The output is written atomically, never over the input.
    """
    with user_errors():
        options = fit_options(
            family, support, mu, mu_prior, p_column, group_column, num_grid, threshold, restarts, seed, dtype,
            user_column, label_column, method,
        )
        kind = check_output(out, [data], "--out")
        from jaxpref.core.posterior import check_rule, filter_labels, select_users

        check_rule(rule, cutoff=cutoff, level=level, fraction=fraction)
        columns = {"user_column": user_column, "label_column": label_column, "group_column": group_column}
        with reading(data):
            check_format_holds(scan(data, p_column=p_column, **columns)[0].collect_schema(), kind, "--out")
        if p_column is None:
            # Two passes over the file, never holding its rows: counts -> fit -> kept rows.
            from jaxpref.scale.streaming import filter_stream, stream_counts

            result = run_fit(stream_counts(data, **columns), options)
            keep_user = select_users(result.users, rule, threshold=result.threshold if cutoff is None else cutoff,
                                     level=level, fraction=fraction)
            num_kept_users = int(keep_user.sum())
            num_kept_labels = filter_stream(data, out, result, keep_user, weights=weights, **columns)
        else:
            from jaxpref.io.atomic import write_table

            result = run_fit(data, options)
            kept = filter_labels(result, rule, threshold=cutoff, level=level, fraction=fraction, weights=weights)
            write_table(kept, out, [data], "--out")
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
    with user_errors():
        check_seed(seed)
        use_compilation_cache()
        from jaxpref.demo import run_demo

        run_demo(users=users, labels=labels, mu=mu, seed=seed, console=stdout)


def main() -> None:
    """Entry point of the ``jaxpref`` script."""
    app(prog_name="jaxpref")


if __name__ == "__main__":
    sys.exit(main())
