"""Fit time and peak memory vs the number of users m: jaxpref, plain NumPy, crowd-kit MACE, NumPyro NUTS.

Every cell (method, m, n) fits the same model to the same simulated users: two_point P_eta with
fixed support (0.1, 0.9), 40 % attentive (eta = 0.9), mu = 0.8, n labels per user (or
``1 + Poisson(n - 1)``); mu is estimated as the MAP under the Beta(8, 2) prior.

- ``jaxpref_compressed``: `jaxpref.io.data.compress_counts` (in slices of 1e7 users, merged) and
  `jaxpref.core.driver.fit` (SQUAREM, float32). ``fit_s`` includes the compression
  (``stats_s``); ``compile_s`` is the first call's excess over the median of the repeats.
- ``jaxpref_per_user``: one `CountStats` row per user, padded to `jaxpref.io.data.bucket_size` rows
  (the path when counts do not compress, e.g. per-label p): the kernel runs on m rows.
- ``numpy_compressed`` / ``numpy_per_user``: `benchmarks.numpy_em` (plain EM, float64) on the
  same compressed rows / on one row per user.
- ``mace``: crowd-kit's MACE (its defaults, VB and 50 iterations, with one restart) on one row
  per label (up to 1e6 labels). Comparison mode has no items shared among annotators: every label
  compares the same pair of models, so every task's truth is "A", and a label is "A" when the user
  preferred A. One task holding all labels is the natural mapping, but crowd-kit multiplies a
  task's per-label probabilities in float64, which underflows past ~1000 labels (NaN, then
  "Encountered all NA values"); the labels are therefore dealt at random into tasks of
  `MACE_TASK_SIZE` labels, like prompts drawn at random. A worker's competence is
  ``spamming_[:, 1]``, the posterior probability of not spamming (the column that multiplies
  ``label == truth`` in MACE's E-step); its AUC for the attentive users is reported.
- ``nuts``: `jaxpref.bayes.model.fit_bayes` (marginalised model, NUTS) on the label rows; ``mu_hat`` is
  the posterior mean of mu. One call, including NumPyro's compilation and the data checks.

MACE and NUTS rows also carry, on the same users, the AUC of jaxpref's posterior mean eta,
jaxpref's mu and the AUC of the raw share k/n (with equal n, eta_mean and k/n rank users alike;
the ``poisson`` setting has unequal n).

Each cell runs in a fresh subprocess (``--cell JSON``) that loads the simulated users from disk
(simulated once per setting, in slices of 1e7 users): ``peak_rss_mb`` is its peak resident memory
during the timed calls (compilation included), ``rss_over_baseline_mb`` that minus its resident
memory after imports and loading the data. A method stops growing m once a cell fails or times
out, or when its fit, or the next one extrapolated linearly in m, exceeds the method's limit.

    python -m benchmarks.bench_fit [--quick] [--max-users M] [--out DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import importlib.util
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import pandas as pd

from benchmarks import numpy_em
from benchmarks.common import RESULTS, machine, markdown_table, new_figure, save_figure, write_results
from jaxpref.core import driver, em
from jaxpref.io.data import CountStats, bucket_size, compress_counts
from jaxpref.core.families import make_family
from jaxpref.metrics import roc_auc
from jaxpref.core.posterior import user_posterior
from jaxpref.simulate import eta_distribution, simulate_counts

ROOT = Path(__file__).resolve().parents[1]
MU = 0.8
MU_START = 0.75
SUPPORT = (0.1, 0.9)
MU_PRIOR = (8.0, 2.0)
TRUTH = eta_distribution("two_point", support=SUPPORT, weight_hi=0.4)
CONFIG = em.EMConfig(make_family("two_point", support=SUPPORT), "prior", MU_PRIOR, tol=1e-7, max_iter=2000)
#: Users simulated and compressed per slice: bounds the memory of m = 1e8.
CHUNK_USERS = 10_000_000
#: Labels per MACE task: crowd-kit's per-task product of probabilities underflows past ~1000.
MACE_TASK_SIZE = 100
MACE_MAX_LABELS = 1_000_000
#: Timed calls per cell; calls slower than SLOW_SECONDS are timed once.
REPEATS = 3
SLOW_SECONDS = 1.0
#: Largest m whose per-user scores (AUC) are computed after the memory measurement.
AUC_MAX_USERS = 1_000_000
#: One compiled program instead of op-by-op dispatch (a second saved per cell).
node_log_posterior = jax.jit(em.node_log_posterior)
COLUMNS = ["method", "m", "n", "counts", "labels", "status", "compile_s", "stats_s", "fit_s", "over_jaxpref",
           "iters", "converged", "peak_rss_mb", "rss_over_baseline_mb", "mu_hat", "auc"]
VERSUS_COLUMNS = ["method", "m", "n", "counts", "fit_s", "auc", "jaxpref_auc", "share_auc", "mu_hat",
                  "jaxpref_mu"]


@dataclasses.dataclass(frozen=True)
class Series:
    """Cells of one method at growing m, for one label setting.

    Attributes:
        method: a key of `METHODS`.
        sizes: the values of m, ascending.
        labels_per_user: n, or the mean of ``1 + Poisson(n - 1)``.
        counts: ``fixed`` or ``poisson`` labels per user.
        limit_s: stop growing m once a fit, or the next one extrapolated, takes longer (None: the timeout).
    """

    method: str
    sizes: tuple[int, ...]
    labels_per_user: int = 10
    counts: str = "fixed"
    limit_s: float | None = None


def full_plan(max_users: int) -> list[Series]:
    """The full run: about 10 minutes on a quiet 2-core box, at most ~25 under the CI box's usual load."""
    decades = tuple(10**e for e in range(3, 9))
    subset = (1_000, 100_000, 10_000_000)
    plan = [
        Series("jaxpref_compressed", decades),
        Series("jaxpref_compressed", subset, 50),
        Series("jaxpref_per_user", decades),
        Series("jaxpref_per_user", subset, 50),
        Series("numpy_compressed", decades, limit_s=60.0),
        Series("numpy_compressed", subset, 50, limit_s=60.0),
        Series("numpy_per_user", decades[:-1], limit_s=60.0),
        Series("numpy_per_user", subset, 50, limit_s=60.0),
        Series("mace", (1_000, 10_000, 100_000), limit_s=120.0),
        Series("mace", (1_000, 10_000), 50, limit_s=120.0),
        Series("mace", (1_000, 10_000, 100_000), counts="poisson", limit_s=120.0),
        Series("nuts", (1_000, 10_000)),
    ]
    return [dataclasses.replace(s, sizes=tuple(m for m in s.sizes if m <= max_users)) for s in plan]


def quick_plan() -> list[Series]:
    """The smoke run (under a minute, mostly start-up and compilation): each method at m = 1000."""
    methods = ("jaxpref_compressed", "jaxpref_per_user", "numpy_compressed", "numpy_per_user", "nuts")
    return [Series(method, (1_000,)) for method in methods] + [Series("mace", (1_000,), counts="poisson")]


def dataset_folder(root: Path, num_users: int, labels_per_user: int, counts: str) -> Path:
    return root / f"{counts}_m{num_users}_n{labels_per_user}"


def simulate_dataset(folder: Path, num_users: int, labels_per_user: int, counts: str) -> None:
    """Writes ``k.npy``, ``n.npy`` (uint8) and ``attentive.npy`` (eta = 0.9) of m users, in slices."""
    rng = np.random.default_rng(0)
    key = jax.random.key(0)
    k, n, attentive = (np.empty(num_users, dtype) for dtype in (np.uint8, np.uint8, bool))
    for index, start in enumerate(range(0, num_users, CHUNK_USERS)):
        size = min(CHUNK_USERS, num_users - start)
        if counts == "poisson":
            n_chunk = 1 + rng.poisson(labels_per_user - 1, size)
        else:
            n_chunk = np.full(size, labels_per_user)
        if n_chunk.max() > np.iinfo(np.uint8).max:
            raise ValueError("labels per user must fit in uint8")
        k_chunk, _, eta = simulate_counts(jax.random.fold_in(key, index), size, jnp.asarray(n_chunk),
                                          jnp.asarray([MU]), TRUTH)
        k[start:start + size] = np.asarray(k_chunk)
        n[start:start + size] = n_chunk
        attentive[start:start + size] = np.asarray(eta) > 0.5
    folder.mkdir(parents=True)
    for name, values in (("k", k), ("n", n), ("attentive", attentive)):
        np.save(folder / f"{name}.npy", values)


def load_dataset(folder: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(np.load(folder / f"{name}.npy") for name in ("k", "n", "attentive"))


def padded_stats(k: np.ndarray, n: np.ndarray, multiplicity: Any, dtype: Any) -> CountStats:
    """`CountStats` of the given rows plus multiplicity-0 rows up to `bucket_size` rows."""
    num_rows = bucket_size(k.size)

    def column(values):
        padded = np.zeros(num_rows, dtype)
        padded[: k.size] = values
        return padded

    return CountStats(column(k)[:, None], column(n)[:, None], column(multiplicity))


def compress_in_chunks(k: np.ndarray, n: np.ndarray, dtype: Any = np.float32) -> CountStats:
    """`compress_counts` of slices of `CHUNK_USERS` users, merged: the same rows, one slice's memory."""
    parts = [compress_counts(k[s:s + CHUNK_USERS, None], n[s:s + CHUNK_USERS, None], np.float64)[0]
             for s in range(0, k.size, CHUNK_USERS)]
    rows = np.concatenate([np.column_stack([part.num_labels[:, 0], part.num_pref_a[:, 0], part.multiplicity])
                           for part in parts])
    rows = rows[rows[:, 2] > 0]
    # (n, k) pairs sorted as compress_counts sorts them: the same statistics, row for row.
    pairs, row_of_pair = np.unique(rows[:, :2], axis=0, return_inverse=True)
    multiplicity = np.bincount(row_of_pair.ravel(), weights=rows[:, 2])
    return padded_stats(pairs[:, 1], pairs[:, 0], multiplicity, dtype)


def per_user_stats(k: np.ndarray, n: np.ndarray) -> CountStats:
    """One float32 row per user, padded (the kernel's path when counts do not compress)."""
    return padded_stats(k, n, 1.0, np.float32)


def per_user_rows(k: np.ndarray, n: np.ndarray) -> CountStats:
    """One float64 row per user, unpadded (NumPy has no compiled shapes to reuse)."""
    return CountStats(k[:, None].astype(np.float64), n[:, None].astype(np.float64), np.ones(k.size))


def timed(function: Callable[[], Any]) -> tuple[float, Any]:
    start = time.perf_counter()
    result = function()
    return time.perf_counter() - start, result


def time_runs(run: Callable[[], Any], jitted: bool) -> tuple[dict, Any]:
    """Times ``run``: `REPEATS` calls, or 1 when a call takes over `SLOW_SECONDS`; ``fit_s`` is their median.

    For jitted runs a first, compiling call comes before them: ``compile_s`` is its excess over ``fit_s``.
    """
    compiling_seconds = timed(run)[0] if jitted else None
    seconds, result = [], None
    while not seconds or (seconds[0] < SLOW_SECONDS and len(seconds) < REPEATS):
        elapsed, result = timed(run)
        seconds.append(elapsed)
    fields = {"fit_s": float(np.median(seconds)), "repeats": len(seconds)}
    if jitted:
        fields["compile_s"] = max(compiling_seconds - fields["fit_s"], 0.0)
    return fields, result


def fit_jaxpref(stats: CountStats) -> em.FitOutput:
    initial = em.init(CONFIG, jnp.asarray([MU_START], jnp.float32))
    output = driver.fit(initial, jax.tree.map(jnp.asarray, stats), CONFIG)
    return jax.block_until_ready(output)


def jaxpref_eta_mean(state: em.EMState, k: np.ndarray, n: np.ndarray) -> np.ndarray:
    """``(num_users,)`` posterior mean of eta at ``state``, computed once per distinct (k, n) row."""
    stats, row_of_user = compress_counts(k[:, None], n[:, None])
    log_resp = node_log_posterior(state, jax.tree.map(jnp.asarray, stats))
    posterior = user_posterior(log_resp, state.family.eta_grid, jnp.asarray(0.5, jnp.float32))
    return np.asarray(posterior.eta_mean)[row_of_user]


def run_jaxpref(make_stats: Callable[[np.ndarray, np.ndarray], CountStats], k: np.ndarray, n: np.ndarray,
                cell: dict):
    def run():
        stats_seconds, stats = timed(lambda: make_stats(k, n))
        return stats_seconds, fit_jaxpref(stats)

    fields, (stats_seconds, output) = time_runs(run, jitted=True)
    fields.update(stats_s=stats_seconds, iters=int(output.num_iter), converged=bool(output.converged),
                  mu_hat=float(output.state.mu[0]))
    return fields, lambda: jaxpref_eta_mean(output.state, k, n)


def fit_numpy(stats: CountStats) -> dict:
    return numpy_em.fit(stats.num_pref_a[:, 0], stats.num_labels[:, 0], stats.multiplicity, "two_point",
                        np.array(SUPPORT), MU_START, "prior", MU_PRIOR, tol=CONFIG.tol,
                        max_iter=CONFIG.max_iter)


def run_numpy(make_stats: Callable[[np.ndarray, np.ndarray], CountStats], k: np.ndarray, n: np.ndarray,
              cell: dict):
    def run():
        stats_seconds, stats = timed(lambda: make_stats(k, n))
        return stats_seconds, fit_numpy(stats)

    fields, (stats_seconds, result) = time_runs(run, jitted=False)
    fields.update(stats_s=stats_seconds, iters=int(result["num_iter"]),
                  converged=result["num_iter"] < CONFIG.max_iter, mu_hat=float(result["mu"]))
    return fields, None


def label_rows(k: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(user, chose_a)`` per label, users' rows consecutive, a user's A labels first."""
    user = np.repeat(np.arange(k.size), n.astype(np.int64))
    first_row = np.cumsum(n.astype(np.int64)) - n
    position = np.arange(user.size) - first_row[user]
    return user, position < k[user]


def mace_frame(k: np.ndarray, n: np.ndarray) -> pd.DataFrame:
    """crowd-kit's ``task, worker, label`` rows: worker j is user j, labels dealt at random into tasks.

    Dealing a user's consecutive rows round-robin instead gives blocks of tasks labelled by the
    same users, where MACE settles on a mix of "A" and "B" truths (AUC 0.07-0.39 at n = 50, 10).
    """
    worker, chose_a = label_rows(k, n)
    num_tasks = -(-worker.size // MACE_TASK_SIZE)
    task = np.random.default_rng(0).permutation(worker.size) % num_tasks
    return pd.DataFrame({"task": task, "worker": worker, "label": np.where(chose_a, "A", "B")})


def run_mace(k: np.ndarray, n: np.ndarray, cell: dict):
    """MACE with the users reordered so that the first label is "A".

    crowd-kit codes workers and labels in order of appearance but sums its strategy counts with a
    sorted groupby, then aligns the two by position: workers must appear in sorted order (they
    do: consecutive rows per worker) and the first label must be the alphabetically first, "A".
    """
    from crowdkit.aggregation import MACE

    order = np.argsort(k == 0, kind="stable")
    frame = mace_frame(k[order], n[order])
    fields, model = time_runs(lambda: MACE(n_restarts=1).fit(frame), jitted=False)
    competence = np.empty(k.size)
    competence[order] = model.spamming_[:, 1]
    fields.update(iters=model.n_iter)
    return fields, lambda: competence


def run_nuts(k: np.ndarray, n: np.ndarray, cell: dict):
    from jaxpref.bayes.model import fit_bayes

    user, chose_a = label_rows(k, n)
    frame = pd.DataFrame({"user": user, "label": chose_a.astype(np.int8)})
    num_warmup, num_samples, num_chains = cell["nuts_draws"]
    fields, fit = time_runs(lambda: fit_bayes(frame, family="two_point", support=SUPPORT, mu_prior=MU_PRIOR,
                                               num_warmup=num_warmup, num_samples=num_samples,
                                               num_chains=num_chains, seed=0), jitted=False)
    fields.update(iters=num_warmup + num_samples, mu_hat=float(np.mean(fit.samples["mu"])),
                  divergences=fit.num_divergences)
    eta_mean = fit.users.set_index("user")["eta_mean"].reindex(np.arange(k.size)).to_numpy()
    return fields, lambda: eta_mean


METHODS: dict[str, Callable[[np.ndarray, np.ndarray, dict], tuple[dict, Any]]] = {
    "jaxpref_compressed": functools.partial(run_jaxpref, compress_in_chunks),
    "jaxpref_per_user": functools.partial(run_jaxpref, per_user_stats),
    "numpy_compressed": functools.partial(run_numpy, functools.partial(compress_in_chunks, dtype=np.float64)),
    "numpy_per_user": functools.partial(run_numpy, per_user_rows),
    "mace": run_mace,
    "nuts": run_nuts,
}
#: Methods whose rows also carry jaxpref's AUC and mu and the raw-share AUC on the same users.
VERSUS_JAXPREF = ("mace", "nuts")


def memory_mb(field: str) -> float:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of this process from Linux's /proc, in MB."""
    line = next(line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith(field))
    return int(line.split()[1]) * 1024 / 1e6


def reset_peak_memory() -> None:
    """Sets ``VmHWM`` to the current resident memory (Linux >= 4.0), forgetting import-time peaks."""
    Path("/proc/self/clear_refs").write_text("5")


def versus_jaxpref(k: np.ndarray, n: np.ndarray, attentive: np.ndarray) -> dict:
    """jaxpref's AUC and mu, and the AUC of the raw share k/n, on the same users."""
    output = fit_jaxpref(compress_in_chunks(k, n))
    return {"jaxpref_auc": roc_auc(jaxpref_eta_mean(output.state, k, n), attentive),
            "share_auc": roc_auc(k / n, attentive), "jaxpref_mu": float(output.state.mu[0])}


def run_cell(cell: dict) -> dict:
    """Loads the users, measures the method's fit, then its peak memory, then (untimed) the AUCs.

    Imports leave a transient peak ~200 MB above the memory they keep, which ``ru_maxrss``
    cannot forget: the peak is read from ``VmHWM`` after resetting it once the data are loaded.
    """
    k, n, attentive = load_dataset(Path(cell["data"]))
    baseline_mb = memory_mb("VmRSS")
    reset_peak_memory()
    fields, scores = METHODS[cell["method"]](k, n, cell)
    peak_mb = memory_mb("VmHWM")
    fields.update(status="ok", peak_rss_mb=peak_mb, rss_over_baseline_mb=peak_mb - baseline_mb)
    if scores is not None and k.size <= AUC_MAX_USERS:
        fields["auc"] = roc_auc(scores(), attentive)
    if cell["method"] in VERSUS_JAXPREF:
        fields.update(versus_jaxpref(k, n, attentive))
    return fields


def launch_cell(cell: dict, timeout_s: float) -> dict:
    """Runs `run_cell` in a fresh interpreter; a timeout or a crash becomes the row's status."""
    command = [sys.executable, "-m", "benchmarks.bench_fit", "--cell", json.dumps(cell)]
    start = time.perf_counter()
    try:
        completed = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout_s,
                                   check=False)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "fit_s": timeout_s, "cell_s": timeout_s}
    cell_seconds = time.perf_counter() - start
    if completed.returncode != 0:
        return {"status": "error", "error": completed.stderr[-2000:], "cell_s": cell_seconds}
    return {**json.loads(completed.stdout.strip().splitlines()[-1]), "cell_s": cell_seconds}


def stop_growing(row: dict, series: Series, next_size: int | None, timeout_s: float) -> bool:
    """After a failure or a timeout, or when this fit or the next (linear in m) would exceed the budget.

    The budget is the method's ``limit_s``, or the timeout when it has none.
    """
    budget = series.limit_s or timeout_s
    if row["status"] != "ok" or row["fit_s"] > budget:
        return True
    return next_size is not None and row["fit_s"] * next_size / row["m"] > budget


def planned_cells(plan: list[Series]) -> list[tuple[Series, int]]:
    """(series, m) pairs to run; MACE up to `MACE_MAX_LABELS` labels, and not at all without crowd-kit."""
    has_crowdkit = importlib.util.find_spec("crowdkit") is not None
    cells = []
    for series in plan:
        if series.method == "mace" and not has_crowdkit:
            print("crowd-kit is not installed: MACE is skipped (pip install crowd-kit)", file=sys.stderr)
            continue
        cells += [(series, m) for m in series.sizes
                  if series.method != "mace" or m * series.labels_per_user <= MACE_MAX_LABELS]
    return cells


def run_plan(plan: list[Series], data_root: Path, timeout_s: float, nuts_draws: tuple[int, int, int]) -> list:
    """Runs the planned cells in order, simulating each setting's users on first use; one row per cell."""
    from rich.progress import Progress

    cells = planned_cells(plan)
    rows, stopped = [], set()
    with Progress() as progress:
        task = progress.add_task("cells", total=len(cells))
        for index, (series, m) in enumerate(cells):
            n, counts = series.labels_per_user, series.counts
            progress.update(task, description=f"{series.method} m={m:.0e} n={n} {counts}")
            row = {"method": series.method, "m": m, "n": n, "counts": counts}
            if series in stopped:
                rows.append({**row, "status": "skipped"})
                progress.advance(task)
                continue
            folder = dataset_folder(data_root, m, n, counts)
            if not folder.exists():
                simulate_dataset(folder, m, n, counts)
            cell = {**row, "data": str(folder), "nuts_draws": nuts_draws}
            row["labels"] = int(np.load(folder / "n.npy", mmap_mode="r").sum(dtype=np.int64))
            row.update(launch_cell(cell, timeout_s))
            rows.append(row)
            following = cells[index + 1] if index + 1 < len(cells) else None
            next_size = following[1] if following is not None and following[0] is series else None
            if stop_growing(row, series, next_size, timeout_s):
                stopped.add(series)
            progress.advance(task)
    return rows


def add_ratios(rows: list[dict]) -> None:
    """``over_jaxpref``: fit time over jaxpref_compressed's at the same (m, n, counts)."""
    reference = {(r["m"], r["n"], r["counts"]): r["fit_s"] for r in rows
                 if r["method"] == "jaxpref_compressed" and r["status"] == "ok"}
    for row in rows:
        base = reference.get((row["m"], row["n"], row["counts"]))
        if base and row["status"] == "ok":
            row["over_jaxpref"] = row["fit_s"] / base


def plot(rows: list[dict], path: Path) -> None:
    """Log-log fit time (left) and peak memory (right) vs m, one line per method and setting."""
    plt, figure, (left, right) = new_figure(ncols=2, figsize=(11, 4))
    measured = [r for r in rows if r["status"] == "ok"]
    settings = sorted({(r["method"], r["n"], r["counts"]) for r in measured})
    for method, n, counts in settings:
        series = sorted((r for r in measured if (r["method"], r["n"], r["counts"]) == (method, n, counts)),
                        key=lambda r: r["m"])
        label = f"{method} n={n}" + (" poisson" if counts == "poisson" else "")
        style = "--" if n != 10 or counts != "fixed" else "-"
        sizes = [r["m"] for r in series]
        left.plot(sizes, [r["fit_s"] for r in series], style, marker="o", label=label)
        right.plot(sizes, [r["peak_rss_mb"] for r in series], style, marker="o", label=label)
    for axis, ylabel in ((left, "fit seconds (incl. compression)"), (right, "peak RSS of the cell, MB")):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("users m")
        axis.set_ylabel(ylabel)
    left.legend(fontsize=6)
    save_figure(plt, figure, path)


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a smoke run at small sizes (under a minute)")
    parser.add_argument("--max-users", type=int, default=10**8, help="largest m of the full run")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for JSON, markdown and PNG")
    parser.add_argument("--cell", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.cell:
        print(json.dumps(run_cell(json.loads(args.cell)), default=float))
        return {}
    plan = quick_plan() if args.quick else full_plan(args.max_users)
    timeout_s, nuts_draws = (60.0, (100, 100, 1)) if args.quick else (300.0, (300, 300, 2))
    with tempfile.TemporaryDirectory(prefix="bench_fit_") as data_root:
        rows = run_plan(plan, Path(data_root), timeout_s, nuts_draws)
    add_ratios(rows)
    shown = [r for r in rows if r["status"] != "skipped"]
    versus = [r for r in shown if r["method"] in VERSUS_JAXPREF and r["status"] == "ok"]
    table = markdown_table(shown, COLUMNS)
    if versus:
        table += "\n\nVersus jaxpref on the same users (AUC for eta = 0.9; share = k/n)\n\n"
        table += markdown_table(versus, VERSUS_COLUMNS)
    payload = {"machine": machine(), "timeout_s": timeout_s, "nuts_draws": nuts_draws, "rows": rows}
    write_results(args.out, "fit", payload, table)
    plot(rows, args.out / "fit.png")
    return payload


if __name__ == "__main__":
    main()
