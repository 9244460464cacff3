"""Gap to the first best vs n: binary ~ 1/sqrt(n log n), linear ~ 1/n, two actions ~ exp(-kappa n).

Reproduces the rates claimed by Liu, Wang, Ma & Li (arXiv 2502.06387) and the discrete-action
contrast of Frick, Iijima & Ishii (arXiv 2312.16789) in the jaxpref model (docs/contracts.md):
second-best gaps on log-log axes with least-squares slopes (binary: after the sqrt(log n)
correction), the lenient cutoff z_n of the binary contract, and the two-action binary gap.

    python experiments/contracts_rates.py --quick
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
from contracts_common import make_economy, markdown_table, named_monitors, parse_quick, write_outputs
from rich.progress import track

from jaxpref.contracts.monitoring import ex_monitor, monitor_phi
from jaxpref.contracts.principal import (
    binary_contract,
    binary_contract_two_actions,
    first_best,
    fit_rate,
    gap_curve,
)


def main() -> None:
    quick = parse_quick(__doc__.splitlines()[0])
    ns = 2.0 ** np.arange(6, 12 if quick else 17)
    monitors = named_monitors(quick=True)  # the two reference monitors; the collapse script varies them
    results: dict[str, dict] = {}
    for name, monitor in track(monitors.items(), description="gap curves"):
        econ = make_economy(monitor)
        a_fb = float(first_best(econ).action)
        linear = np.asarray(gap_curve(econ, "linear", ns))
        binary = np.asarray(gap_curve(econ, "binary", ns))
        fixed = binary_contract(econ._replace(num_samples=ns), a_fb)
        phi = float(monitor_phi(monitor, a_fb))
        z = (ns * phi - np.asarray(fixed.cutoff)) / np.sqrt(ns * phi * (1.0 - phi))
        results[name] = {
            "first_best_action": a_fb,
            "linear_gap": linear.tolist(),
            "binary_gap": binary.tolist(),
            "linear_fit": fit_rate(ns, linear)._asdict(),
            "binary_fit_raw": fit_rate(ns, binary)._asdict(),
            "binary_fit_log_corrected": fit_rate(ns, binary, log_correction=True)._asdict(),
            "binary_cutoff_z_at_first_best": z.tolist(),
            "z_squared_slope_on_log_n": float(np.polyfit(np.log(ns), z**2, 1)[0]),
            "binary_over_linear": (binary / linear).tolist(),
        }

    two_action_ns = np.arange(10.0, 160.0, 10.0)
    econ = make_economy(ex_monitor(0.2))
    discrete = np.asarray(binary_contract_two_actions(econ._replace(num_samples=two_action_ns), 0.8, 0.4).gap)
    slope, intercept = np.polyfit(two_action_ns, np.log(discrete), 1)
    residuals = np.log(discrete) - (slope * two_action_ns + intercept)
    results["two_actions EX rho=0.2 {0.4, 0.8}"] = {
        "n": two_action_ns.tolist(),
        "gap": discrete.tolist(),
        "exponential_rate_kappa": float(-slope),
        "r_squared_log_gap_on_n": float(1.0 - residuals.var() / np.log(discrete).var()),
    }

    figure, axes = plt.subplots(1, 3, figsize=(16, 4.5))
    for (name, result), color in zip(((k, v) for k, v in results.items() if "linear_gap" in v), ("C0", "C1")):
        for kind, marker in (("linear", "o"), ("binary", "s")):
            gaps = np.asarray(result[f"{kind}_gap"])
            fit = result["linear_fit"] if kind == "linear" else result["binary_fit_raw"]
            axes[0].loglog(ns, gaps, marker, color=color, label=f"{name}, {kind} (slope {fit['slope']:.3f})")
            axes[0].loglog(ns, np.exp(fit["intercept"]) * ns ** fit["slope"], "-", color=color, alpha=0.5)
        corrected = np.asarray(result["binary_gap"]) * np.sqrt(np.log(ns))
        slope_corrected = result["binary_fit_log_corrected"]["slope"]
        axes[1].loglog(ns, corrected, "s-", color=color, label=f"{name}: slope {slope_corrected:.3f}")
    axes[1].loglog(ns, corrected[0] * (ns / ns[0]) ** -0.5, "k:", label="slope -1/2")
    axes[0].set(xlabel="monitored units n", ylabel="gap to first best", title="second-best gap (log-log)")
    axes[1].set(xlabel="n", ylabel="binary gap x sqrt(log n)", title="binary, log-corrected")
    axes[2].semilogy(two_action_ns, discrete, "o-", label=f"binary, two actions: kappa = {-slope:.3f}")
    axes[2].set(xlabel="n", ylabel="gap", title="discrete actions: exponential decay")
    for axis in axes:
        axis.legend(fontsize=7)
        axis.grid(alpha=0.3, which="both")

    rows = [
        [
            name,
            r["linear_fit"]["slope"],
            r["binary_fit_raw"]["slope"],
            r["binary_fit_log_corrected"]["slope"],
            f"[{r['binary_fit_log_corrected']['ci_low']:.3f}, {r['binary_fit_log_corrected']['ci_high']:.3f}]",
            r["z_squared_slope_on_log_n"],
            r["binary_over_linear"][0],
            r["binary_over_linear"][-1],
        ]
        for name, r in results.items()
        if "linear_gap" in r
    ]
    two = results["two_actions EX rho=0.2 {0.4, 0.8}"]
    markdown = "\n".join(
        [
            "# Gap to the first best vs n (jaxpref model)",
            "",
            f"n = 2^{int(np.log2(ns[0]))} .. 2^{int(np.log2(ns[-1]))}; second best over the target action;"
            " CARA rho_u = 1, c(a) = a^3/3, R(a) = a, u0 = 0, wages >= -5.",
            "",
            markdown_table(
                [
                    "monitor",
                    "linear slope",
                    "binary slope (raw)",
                    "binary slope (log-corrected)",
                    "95% CI",
                    "slope of z_n^2 on log n",
                    "binary/linear at n_min",
                    "binary/linear at n_max",
                ],
                rows,
            ),
            "",
            f"Two actions {{0.4, 0.8}} (EX rho = 0.2): log gap linear in n with rate kappa = {two['exponential_rate_kappa']:.4f}"
            f" per unit (R^2 = {two['r_squared_log_gap_on_n']:.4f}).",
        ]
    )
    write_outputs("rates", {"n": ns.tolist(), "results": results}, markdown, figure, quick)


if __name__ == "__main__":
    main()
