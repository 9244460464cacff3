"""From the EM to a contract: what a posterior bonus rule costs the company vs the optimal contracts.

Users are simulated and fitted with jaxpref's `AttentivenessEM` (comparison mode, mu known). The
rule "bonus when P(eta >= 0.5 | labels) >= level" is a cutoff on the count k of labels for the
stronger model A (`jaxpref.contracts.bridge`); priced as a binary contract implementing the
first-best attentiveness it is compared with the optimal binary and linear contracts of the
jaxpref model (docs/contracts.md), analytically and on simulated users who work at that level.

    python experiments/contracts_bridge.py --quick
"""

from __future__ import annotations

import jax
import matplotlib.pyplot as plt
import numpy as np
from contracts_common import make_economy, markdown_table, parse_quick, write_outputs
from rich.progress import track

import jaxpref
from jaxpref.contracts.agent import effort_cost, utility
from jaxpref.contracts.bridge import posterior_bonus_rule
from jaxpref.contracts.monitoring import comparison_monitor
from jaxpref.contracts.principal import (
    binary_contract,
    binary_contract_at_cutoff,
    first_best,
    linear_contract,
)

MU, THRESHOLD, LEVELS = 0.74, 0.5, (0.5, 0.9, 0.99)


def wages_of(contract, counts: np.ndarray, num_labels: int) -> np.ndarray:
    if hasattr(contract, "cutoff"):
        return np.where(counts >= float(contract.cutoff), float(contract.high_wage), float(contract.low_wage))
    return float(contract.intercept) + float(contract.slope) * counts / num_labels


def main() -> None:
    quick = parse_quick(__doc__.splitlines()[0])
    label_counts = (50,) if quick else (20, 50, 100)
    num_users, num_workers = (1000, 5000) if quick else (3000, 20000)
    key = jax.random.key(2026)
    results, rows, posteriors = {}, [], {}
    for num_labels in track(label_counts, description="labels per user"):
        key, fit_key, work_key = jax.random.split(key, 3)
        sim = jaxpref.simulate(
            fit_key, num_users, num_labels, family="two_point", mu=MU, support=(0.1, 0.9), weight_hi=0.6
        )
        model = jaxpref.AttentivenessEM(family="two_point", mu=MU, threshold=THRESHOLD, num_restarts=1).fit(
            sim.frame
        )
        econ = make_economy(comparison_monitor(MU), num_labels)
        a_fb = float(first_best(econ).action)
        # Workers who all choose the first-best attentiveness; their k is the contract's score.
        workers = jaxpref.simulate(work_key, num_workers, num_labels, family="point", eta=a_fb, mu=MU)
        counts = workers.frame.groupby("user")["label"].sum().to_numpy()
        contracts = {"optimal binary": binary_contract(econ, a_fb), "linear": linear_contract(econ, a_fb)}
        entry = {"first_best_action": a_fb, "fitted_params": model.params_, "levels": {}}
        for level in LEVELS:
            rule = posterior_bonus_rule(
                model.params_["eta_grid"],
                model.params_["weights"],
                MU,
                num_labels,
                threshold=THRESHOLD,
                level=level,
            )
            users = model.users_
            agreement = float(
                np.mean((users["prob_attentive"] >= level) == (users["n_pref_a"] >= rule.cutoff))
            )
            contracts[f"posterior rule, level {level}"] = binary_contract_at_cutoff(econ, a_fb, rule.cutoff)
            entry["levels"][str(level)] = {
                "cutoff": rule.cutoff,
                "monotone": rule.monotone,
                "agreement_with_users_table": agreement,
            }
            posteriors[num_labels] = np.asarray(rule.prob_attentive)
        for name, contract in contracts.items():
            record = {
                "cutoff": float(contract.cutoff) if hasattr(contract, "cutoff") else None,
                "incentive_compatible": bool(contract.incentive_compatible),
                "expected_wage": float(contract.cost),
                "gap_to_first_best": float(contract.gap),
            }
            if np.isfinite(record["expected_wage"]):
                wages = wages_of(contract, counts, num_labels)
                record |= {
                    "simulated_mean_wage": float(wages.mean()),
                    "simulated_se": float(wages.std(ddof=1) / np.sqrt(wages.size)),
                    "simulated_net_utility": float(
                        np.mean(utility(wages, econ.risk_aversion)) - effort_cost(a_fb, econ)
                    ),
                }
            entry[name] = {
                key: (value if not isinstance(value, float) or np.isfinite(value) else None)
                for key, value in record.items()
            }
            simulated = (
                f"{record['simulated_mean_wage']:.4f} ± {record['simulated_se']:.4f}"
                if "simulated_mean_wage" in record
                else "- (no feasible bonus)"
            )
            rows.append(
                [
                    num_labels,
                    name,
                    "-" if record["cutoff"] is None else int(record["cutoff"]),
                    "yes" if record["incentive_compatible"] else "NO",
                    record["expected_wage"],
                    record["gap_to_first_best"],
                    simulated,
                    record.get("simulated_net_utility", "-"),
                ]
            )
        results[str(num_labels)] = entry

    figure, axes = plt.subplots(1, 2, figsize=(13, 4.5))
    for num_labels, prob in posteriors.items():
        axes[0].plot(np.arange(num_labels + 1), prob, ".-", label=f"n = {num_labels}")
    for level in LEVELS:
        axes[0].axhline(level, color="grey", ls=":", lw=0.8)
    axes[0].set(
        xlabel="k = labels for model A",
        ylabel="P(eta >= 0.5 | k)",
        title="EM posterior: monotone in k = a cutoff rule",
    )
    axes[0].legend()
    names = [
        name
        for name in results[str(label_counts[-1])]
        if isinstance(results[str(label_counts[-1])][name], dict)
        and "gap_to_first_best" in results[str(label_counts[-1])][name]
    ]
    for offset, num_labels in enumerate(label_counts):
        gaps = [
            results[str(num_labels)][name]["gap_to_first_best"]
            if results[str(num_labels)][name]["incentive_compatible"]
            and results[str(num_labels)][name]["gap_to_first_best"] is not None
            else np.nan
            for name in names
        ]
        axes[1].bar(np.arange(len(names)) + 0.25 * offset, gaps, width=0.25, label=f"n = {num_labels}")
    axes[1].set_xticks(np.arange(len(names)) + 0.25, names, rotation=20, fontsize=7)
    axes[1].set(
        ylabel="expected wage above first best", title="cost of implementing a_FB (missing bar: not IC)"
    )
    axes[1].legend()

    markdown = "\n".join(
        [
            "# Posterior bonus rules as binary contracts (jaxpref model)",
            "",
            f"Users: two-point eta in {{0.1, 0.9}} (60% at 0.9), mu = {MU} known, {num_users} users fitted by"
            f" AttentivenessEM; workers: {num_workers} simulated users at eta = a_FB. Every contract implements a_FB;"
            " 'NO' = the rule's cutoff cannot make a_FB the annotator's best response.",
            "",
            markdown_table(
                [
                    "n",
                    "contract",
                    "cutoff k",
                    "IC",
                    "expected wage",
                    "gap to first best",
                    "simulated mean wage ± SE",
                    "annotator net utility (u0 = 0)",
                ],
                rows,
            ),
        ]
    )
    write_outputs("bridge", {"results": results}, markdown, figure, quick)


if __name__ == "__main__":
    main()
