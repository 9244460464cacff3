"""The DPO hand-off: losses, a Flax NNX GPT-2 and its trainer, export to TRL's format.

- ``jaxpref.dpo.losses``: sigmoid (DPO), conservative (cDPO), robust (rDPO) and IPO losses
  with per-example weights and flip rates, and DPO metrics.
- ``jaxpref.dpo.model``: GPT-2 in Flax NNX and a loader for local Hugging Face checkpoints.
- ``jaxpref.dpo.train``: the DPO trainer (jitted step, optax, data parallel, orbax checkpoints).
- ``jaxpref.dpo.export``: user labels -> ``prompt``/``chosen``/``rejected`` datasets and parquet.
- ``jaxpref.dpo.trl_trainer``: ``WeightedDPOTrainer``, TRL's ``DPOTrainer`` applying those
  weights and flip rates per example (needs ``jaxpref[hf]``).

See ``docs/dpo.md`` for which route and which loss to use. The losses and the export are
imported here; the model, trainer and TRL trainer load on first
use of their modules, so ``import jaxpref.dpo`` stays light and never needs torch.
"""

from jaxpref.dpo.export import preference_frame, to_dataset, write_parquet
from jaxpref.dpo.losses import DPOMetrics, dpo_logits, dpo_loss, sequence_log_probs

__all__ = [
    "DPOMetrics",
    "dpo_logits",
    "dpo_loss",
    "preference_frame",
    "sequence_log_probs",
    "to_dataset",
    "write_parquet",
]
