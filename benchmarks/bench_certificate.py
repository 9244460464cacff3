"""Certified fits against an independent optimiser, before and after the certificate.

For each setting of ``tests/certified_settings.py`` (every family; mu known / prior / free / per
group; per-label p; unequal n; all labels B; one label per user; Beta(0.5, 0.8) users) this fits
``jaxpref.fit_attentiveness`` with its defaults (float32) and evaluates the returned parameters
on the exact objective of the independent NumPy/SciPy reference (``tests/reference_optimum.py``),
next to the reference's own optimum. ``--before-src DIR`` also runs the same fits with the
jaxpref package found in DIR (e.g. a checkout of the commit before the certificate), in a
subprocess, so one run prints both side by side.

    python benchmarks/bench_certificate.py [--before-src /path/to/old/checkout] [--out benchmarks/results]

Writes ``certificate.json`` and prints a markdown table: nats short of the reference optimum,
the certificate and ``converged``, EM iterations, and the warm fit time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from certified_settings import SETTINGS, setting  # noqa: E402


def exact_objective(problem, params: dict) -> float:
    """The reference objective at a fit's parameters (its own likelihood code and Beta cell masses)."""
    from reference_optimum import beta_nodes_and_edges
    from scipy.special import betainc

    mu = params["mu"]
    if isinstance(mu, dict):
        mu = [mu[key] for key in sorted(mu)]
    mu = None if mu is None else np.atleast_1d(np.asarray(mu, float))
    if problem.family == "beta":
        nodes, edges = beta_nodes_and_edges(problem.num_grid)
        weights = np.diff(betainc(params["alpha"], params["beta"], edges))
    elif problem.family == "npmle":
        nodes, weights = np.linspace(0.0, 1.0, problem.num_grid), np.asarray(params["weights"])
    else:
        nodes = np.asarray(params["support"], float)
        weights = np.asarray(params["weights"] or [1.0], float)
    return problem.objective_at(nodes, weights, mu)


def measure(names: list[str]) -> dict:
    """Fits every setting twice (first call compiles) with the jaxpref on sys.path."""
    import jaxpref

    rows = {}
    for name in names:
        frame, options, problem = setting(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            started = time.perf_counter()
            jaxpref.fit_attentiveness(frame, **options)
            first = time.perf_counter() - started
            started = time.perf_counter()
            fit = jaxpref.fit_attentiveness(frame, **options)
            warm = time.perf_counter() - started
        rows[name] = {
            "exact_objective": exact_objective(problem, fit.params),
            "optimality_gap": getattr(fit, "optimality_gap", None),
            "converged": bool(fit.converged),
            "num_iter": int(fit.num_iter),
            "first_s": first,
            "warm_s": warm,
            "jaxpref": str(Path(jaxpref.__file__).parent),
        }
        print(f"  {name}: {rows[name]}", file=sys.stderr, flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before-src", type=Path, help="a checkout whose jaxpref/ is the 'before' code")
    parser.add_argument("--out", type=Path, default=HERE / "results")
    parser.add_argument("--settings", nargs="*", default=SETTINGS)
    parser.add_argument("--measure-only", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure_only:
        print(json.dumps(measure(args.settings)))
        return

    results = {"settings": {}}
    before = {}
    if args.before_src:
        env = dict(os.environ, PYTHONPATH=str(args.before_src))
        command = [sys.executable, __file__, "--measure-only", "--settings", *args.settings]
        before = json.loads(subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout)
    after = measure(args.settings)
    lines = ["| setting | reference | short before | short after | certificate after | converged before / after "
             "| EM iterations before / after | warm s before / after |", "|---|---|---|---|---|---|---|---|"]
    for name in args.settings:
        _, _, problem = setting(name)
        reference, _ = problem.maximise()
        now, old = after[name], before.get(name)
        results["settings"][name] = {"reference_objective": reference, "after": now, "before": old}
        short = lambda row: "" if row is None else f"{reference - row['exact_objective']:.4f}"  # noqa: E731
        pair = lambda key, fmt: (f"{fmt(old[key])} / " if old else "") + fmt(now[key])  # noqa: E731
        lines.append(f"| {name} | {reference:.3f} | {short(old)} | {short(now)} | {now['optimality_gap']:.1e} | "
                     f"{pair('converged', str)} | {pair('num_iter', str)} | {pair('warm_s', lambda v: f'{v:.2f}')} |")
    table = "\n".join(lines)
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    results["table"] = table
    target = args.out / "certificate.json"
    temporary = target.with_suffix(".json.tmp")
    temporary.write_text(json.dumps(results, indent=1))
    temporary.replace(target)


if __name__ == "__main__":
    main()
