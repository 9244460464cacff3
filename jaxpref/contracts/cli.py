"""``jaxpref contracts``: optimal binary and linear contracts, and monitoring sample sizes.

A typer sub-app; the main CLI mounts it with ``app.add_typer(contracts_app, name="contracts")``.

    jaxpref contracts optimal --monitor sc --m2 0.08 --n 200
    jaxpref contracts optimal --monitor ex --rho 0.2 --n 1000 --json
    jaxpref contracts sample-size --m2 0.08 --rho 0.02 --eps 0.05 --delta 0.05
"""

from __future__ import annotations

import json
import math
from enum import Enum
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

__all__ = ["app"]

app = typer.Typer(
    help="Monitoring and incentive contracts for annotators (the jaxpref model; questions after "
    "Liu, Wang, Ma & Li, arXiv 2502.06387).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


class MonitorKind(str, Enum):
    sc = "sc"
    ex = "ex"
    comparison = "comparison"


def _monitor(kind: MonitorKind, m2: float, rho: float, mu: float) -> Any:
    # The contract modules import JAX: loaded only once the options parsed, so a rejected option returns at once.
    from jaxpref.contracts.monitoring import comparison_monitor, ex_monitor, sc_monitor

    builders = {
        MonitorKind.sc: (sc_monitor, m2, "--m2"),
        MonitorKind.ex: (ex_monitor, rho, "--rho"),
        MonitorKind.comparison: (comparison_monitor, mu, "--mu"),
    }
    build, value, flag = builders[kind]
    try:
        return build(value)
    except ValueError as error:
        raise typer.BadParameter(str(error), param_hint=flag) from None


def _number(value: Any) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


@app.command()
def optimal(
    monitor: MonitorKind = typer.Option(
        MonitorKind.sc,
        help="sc: hidden duplicates; ex: expert agreement; comparison: label = prefers model A.",
    ),
    m2: float = typer.Option(0.08, help="SC: the annotator's mean squared preference margin, in [0, 1/4]."),
    rho: float = typer.Option(0.2, help="EX: annotator-expert taste alignment, in [-1/4, 1/4]."),
    mu: float = typer.Option(0.74, help="Comparison mode: P(careful user prefers model A)."),
    n: int = typer.Option(200, "--n", help="Monitored units per annotator."),
    risk_aversion: float = typer.Option(1.0, help="CARA coefficient of the annotator (0: risk neutral)."),
    cost_scale: float = typer.Option(1.0, help="kappa in c(a) = kappa a^gamma / gamma."),
    cost_power: float = typer.Option(3.0, help="gamma in c(a) (>= 1; >= 3 for SC, see docs/contracts.md)."),
    revenue: float = typer.Option(1.0, help="r in the company's value R(a) = r a."),
    outside_utility: float = typer.Option(0.0, help="u0, the annotator's outside option."),
    min_wage: float = typer.Option(-5.0, help="Limited liability: every wage >= this (-inf: off)."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """First best and the optimal binary and linear contracts for one annotator."""
    if n < 1:
        raise typer.BadParameter(f"must be a positive integer, got {n}", param_hint="--n")
    from jaxpref.contracts.agent import economy
    from jaxpref.contracts.monitoring import monitor_fisher
    from jaxpref.contracts.principal import binary_contract, first_best, linear_contract, second_best

    chosen_monitor = _monitor(monitor, m2, rho, mu)
    status = Console(stderr=True).status("Solving for the optimal contracts...", spinner="dots")
    status.start()
    try:
        econ = economy(
            chosen_monitor,
            n,
            risk_aversion=risk_aversion,
            cost_scale=cost_scale,
            cost_power=cost_power,
            revenue_per_action=revenue,
            outside_utility=outside_utility,
            min_wage=min_wage,
        )
    except ValueError as error:
        status.stop()
        raise typer.BadParameter(str(error)) from None
    first = first_best(econ)
    rows: list[dict[str, Any]] = [
        {
            "contract": "first best",
            "action": _number(first.action),
            "expected_wage": _number(first.action * revenue - first.value),
            "value": _number(first.value),
            "gap": 0.0,
            "terms": "fixed wage h(c(a) + u0)",
        }
    ]
    for kind, solve in (("binary", binary_contract), ("linear", linear_contract)):
        best = second_best(econ, kind)
        contract = solve(econ, best.action) if float(best.action) > 0.0 else None
        if contract is None:
            terms = "no effort: fixed wage h(u0)"
        elif kind == "binary":
            terms = (
                f"wage {float(contract.high_wage):.4g} if K >= {int(contract.cutoff)} of {n}, "
                f"else {float(contract.low_wage):.4g}"
            )
        else:
            terms = f"wage {float(contract.intercept):.4g} + {float(contract.slope):.4g} K/{n}"
        rows.append(
            {
                "contract": kind,
                "action": _number(best.action),
                "expected_wage": _number(best.action * revenue - best.value),
                "value": _number(best.value),
                "gap": _number(best.gap),
                "terms": terms,
            }
        )
    information = _number(monitor_fisher(chosen_monitor, first.action))
    status.stop()
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "monitor": monitor.value,
                    "n": n,
                    "fisher_information_at_first_best": information,
                    "contracts": rows,
                },
                indent=2,
            )
        )
        return
    table = Table(title=f"Optimal contracts, monitor={monitor.value}, n={n}, I(a_FB)={information:.4g}")
    for column in ("contract", "action", "expected wage", "company value", "gap to first best", "terms"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            row["contract"],
            *(f"{row[key]:.6g}" for key in ("action", "expected_wage", "value", "gap")),
            row["terms"],
        )
    Console().print(table)


@app.command("sample-size")
def sample_size(
    m2: float = typer.Option(0.08, help="SC: the annotator's mean squared preference margin."),
    rho: float = typer.Option(0.02, help="EX: annotator-expert taste alignment."),
    eps: float = typer.Option(0.05, help="Tolerated error |a_hat - a|."),
    delta: float = typer.Option(0.05, help="Allowed failure probability."),
    actions: str = typer.Option("0.3,0.6,0.9", help="Comma-separated actions a."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table."),
) -> None:
    """Monitored units needed to estimate the action: self-consistency vs expert agreement."""
    import numpy as np

    from jaxpref.contracts.monitoring import crossover_action, ex_monitor, sample_complexity, sc_monitor

    try:
        grid = np.array([float(value) for value in actions.split(",")])
    except ValueError:
        raise typer.BadParameter(
            f"expected numbers separated by commas, got {actions!r}", param_hint="--actions"
        ) from None
    if np.any((grid <= 0.0) | (grid > 1.0)):
        raise typer.BadParameter("every action must lie in (0, 1]", param_hint="--actions")
    try:
        sc, ex = sc_monitor(m2), ex_monitor(rho)
        units_sc, units_ex = sample_complexity(grid, sc, eps, delta), sample_complexity(grid, ex, eps, delta)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    rows = [
        {"action": float(a), "units_sc": _number(s), "units_ex": _number(e)}
        for a, s, e in zip(grid, units_sc, units_ex)
    ]
    crossover = _number(crossover_action(m2, rho))
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "m2": m2,
                    "rho": rho,
                    "eps": eps,
                    "delta": delta,
                    "crossover_action": crossover,
                    "rows": rows,
                },
                indent=2,
            )
        )
        return
    table = Table(
        title=f"n(eps={eps}, delta={delta}); SC wins above a = "
        f"{crossover if crossover is not None else 'never'}"
    )
    for column in ("action", "self-consistency", "expert"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            f"{row['action']:.3g}",
            *("inf" if row[key] is None else f"{row[key]:.0f}" for key in ("units_sc", "units_ex")),
        )
    Console().print(table)
