"""Fits LMArena's arena-rank Bradley-Terry on vote files; run by the Python of arena-rank's own environment.

arena-rank pins jax 0.8.1 / numpy 2.3.3, so it cannot share jaxpref's environment:
`arena_simulation.py` and `benchmarks/bench_arena.py` call this script with that environment's
interpreter (``--arena-rank-python``). Reads a JSON list of parquet paths on stdin; prints, per
file, the ratings on the logit scale centred to sum to zero (jaxpref's anchor), sandwich
intervals and the seconds from reading the file to the ratings.
"""

import json
import sys
import time

import numpy as np
import pandas as pd
from arena_rank.models.bradley_terry import BradleyTerry
from arena_rank.utils.data_utils import PairDataset


def fit_file(path: str) -> dict:
    start = time.perf_counter()
    votes = pd.read_parquet(path, columns=["model_a", "model_b", "winner"])
    dataset = PairDataset.from_pandas(votes)
    model = BradleyTerry(n_competitors=len(dataset.competitors))
    result = model.compute_ratings_and_cis(dataset, significance_level=0.05)
    seconds = time.perf_counter() - start
    to_logit = lambda value: (np.asarray(value, np.float64) - model.init_rating) / model.alpha
    theta = to_logit(result["ratings"])
    shift = theta.mean()
    return {
        "models": [str(name) for name in result["competitors"]],
        "theta": (theta - shift).tolist(),
        "theta_lower": (to_logit(result["rating_lower"]) - shift).tolist(),
        "theta_upper": (to_logit(result["rating_upper"]) - shift).tolist(),
        "seconds": seconds,
    }


if __name__ == "__main__":
    print(json.dumps([fit_file(path) for path in json.load(sys.stdin)]))
