"""The engine: the likelihood, the P_eta families, EM and its acceleration, the certified driver.

Layers, each importing only those above it:

- `jaxpref.core.likelihood`: per-label probabilities, the marginal log-likelihood on a grid of
  eta nodes, expected counts.
- `jaxpref.core.families`: the P_eta families (one module each) behind one protocol.
- `jaxpref.core.em`: the EM configuration, state and one pure `step`; `jaxpref.core.dense` the
  same step on a fixed per-label table.
- `jaxpref.core.accelerate`: SQUAREM cycles; `jaxpref.core.polish`: Newton / interior-point
  finish and the optimality certificate.
- `jaxpref.core.driver`: the loop, restarts and the polish, the one entry point for a fit.
- `jaxpref.core.posterior`, `jaxpref.core.uncertainty`: per-user posteriors, standard errors.

The friendly API over it is `jaxpref.estimator`; `jaxpref.scale` shards and streams it.
"""
