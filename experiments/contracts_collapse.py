"""Monitoring and contracts are complements: gap curves of different monitors collapse against I n.

Liu, Wang, Ma & Li (arXiv 2502.06387) give the gaps as functions of I n (I: Fisher information
of the monitor). In the jaxpref model (docs/contracts.md) self-consistency and expert monitors with
different m2 and rho are solved at their own second best; plotted against I(a_FB) n the linear
curves fall on one line, gap ~ rho_u c'^2 / (2 u'^2 I n), and the binary ones nearly so.

    python experiments/contracts_collapse.py --quick
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from contracts_common import make_economy, markdown_table, named_monitors, parse_quick, write_outputs
from rich.progress import track

from jaxpref.contracts.agent import effort_cost, marginal_cost
from jaxpref.contracts.monitoring import monitor_fisher
from jaxpref.contracts.principal import first_best, gap_curve


def main() -> None:
    quick = parse_quick(__doc__.splitlines()[0])
    ns = 2.0 ** np.arange(6, 11 if quick else 15)
    results: dict[str, dict] = {}
    for name, monitor in track(named_monitors(quick).items(), description="monitors"):
        econ = make_economy(monitor)
        a_fb = float(first_best(econ).action)
        information = float(monitor_fisher(monitor, a_fb))
        linear = np.asarray(gap_curve(econ, "linear", ns))
        binary = np.asarray(gap_curve(econ, "binary", ns))
        # Leading-order linear gap at a_FB: rho_u c'(a)^2 / (2 u'^2 I n), u' = 1 - rho_u (c(a) + u0).
        rho_u = econ.risk_aversion
        marginal_utility = 1.0 - rho_u * (float(effort_cost(a_fb, econ)) + econ.outside_utility)
        constant = rho_u * float(marginal_cost(a_fb, econ)) ** 2 / (2.0 * marginal_utility**2)
        results[name] = {
            "fisher_information_at_first_best": information,
            "linear_gap": linear.tolist(),
            "binary_gap": binary.tolist(),
            "linear_gap_times_I_n_over_constant": (linear * information * ns / constant).tolist(),
            "binary_gap_times_sqrt_I_n_log_n": (binary * np.sqrt(information * ns * np.log(ns))).tolist(),
        }

    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for index, (name, result) in enumerate(results.items()):
        information = result["fisher_information_at_first_best"]
        color = f"C{index}"
        axes[0].loglog(ns, result["linear_gap"], "o-", color=color, label=f"{name} (I = {information:.3f})")
        axes[0].loglog(ns, result["binary_gap"], "s--", color=color)
        axes[1].loglog(information * ns, result["linear_gap"], "o-", color=color, label=f"{name} linear")
        axes[2].loglog(information * ns, result["binary_gap"], "s--", color=color, label=f"{name} binary")
    axes[0].set(xlabel="n", ylabel="gap", title="gap vs n (o linear, s binary)")
    axes[1].set(xlabel="I(a_FB) n", ylabel="linear gap", title="linear: collapse on I n")
    axes[2].set(xlabel="I(a_FB) n", ylabel="binary gap", title="binary vs I n")
    for axis in axes:
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3, which="both")

    rows = [
        [
            name,
            r["fisher_information_at_first_best"],
            r["linear_gap_times_I_n_over_constant"][0],
            r["linear_gap_times_I_n_over_constant"][-1],
            r["binary_gap_times_sqrt_I_n_log_n"][0],
            r["binary_gap_times_sqrt_I_n_log_n"][-1],
        ]
        for name, r in results.items()
    ]
    markdown = "\n".join(
        [
            "# Gap curves against I n (jaxpref model)",
            "",
            "Linear: gap x I n / (rho_u c'^2 / (2 u'^2)) -> 1 for every monitor (the curves collapse);"
            " binary: gap x sqrt(I n log n) stays of the same order across monitors.",
            "",
            markdown_table(
                [
                    "monitor",
                    "I(a_FB)",
                    "linear ratio at n_min",
                    "linear ratio at n_max",
                    "binary x sqrt(I n log n) at n_min",
                    "at n_max",
                ],
                rows,
            ),
        ]
    )
    write_outputs("collapse", {"n": ns.tolist(), "results": results}, markdown, figure, quick)


if __name__ == "__main__":
    main()
