"""Run TRL's ``DPOTrainer`` on a preference frame from ``jaxpref.dpo.export``.

Needs the ``hf`` extra (``pip install jaxpref[hf]``: torch and trl). This is a thin adapter: it
maps jaxpref's per-label weights and flip rates onto what TRL supports and otherwise hands
over to TRL unchanged.

TRL's ``DPOTrainer`` (1.x) takes one ``label_smoothing`` for the whole data set and no
per-example weights, so:

- per-label weights become a weighted resample of the rows (``weighting="resample"``: rows
  drawn with probability proportional to their weight, with replacement, seeded), whose loss
  equals the weighted loss in expectation; ``"drop_zero"`` keeps the rows of positive weight
  unweighted (hard filtering); ``"ignore"`` uses every row once;
- per-label flip rates become their weighted mean, passed as ``label_smoothing`` to TRL's
  ``robust`` loss (rDPO).

The exact per-example forms (weights and eps per label) live in the JAX trainer,
``jaxpref.dpo.train``.

Example (not run: needs torch and trl):
    >>> trainer = train_with_trl(model, tokenizer, frame, output_dir="out",  # doctest: +SKIP
    ...                          loss_type="robust", max_steps=100)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

__all__ = ["WEIGHTINGS", "prepare_for_trl", "train_with_trl"]

WEIGHTINGS = ("resample", "drop_zero", "ignore")


def prepare_for_trl(
    frame: pd.DataFrame, *, weighting: str = "resample", seed: int = 0
) -> tuple[pd.DataFrame, float]:
    """Rows for TRL and the flip rate to use as its ``label_smoothing``.

    Args:
        frame: output of ``jaxpref.dpo.export.preference_frame``.
        weighting: ``"resample"``, ``"drop_zero"`` or ``"ignore"`` (see the module docstring).
        seed: seed of the weighted resample.

    Returns:
        ``(rows, mean_eps)``: a frame with ``prompt``, ``chosen``, ``rejected`` (and ``user``),
        and the weight-averaged flip rate of the input rows.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"`weighting` must be one of {WEIGHTINGS}; got {weighting!r}.")
    missing = [c for c in ("prompt", "chosen", "rejected", "weight", "eps") if c not in frame.columns]
    if missing:
        raise ValueError(f"`frame` lacks {missing}; build it with jaxpref.dpo.export.preference_frame.")
    weights = frame["weight"].to_numpy(dtype=np.float64)
    if weights.sum() <= 0:
        raise ValueError("every row of `frame` has weight 0: nothing to train on.")
    mean_eps = float(np.average(frame["eps"].to_numpy(dtype=np.float64), weights=weights))
    if weighting == "resample":
        rng = np.random.default_rng(seed)
        rows = frame.iloc[rng.choice(len(frame), size=len(frame), p=weights / weights.sum())]
    elif weighting == "drop_zero":
        rows = frame[weights > 0]
    else:
        rows = frame
    columns = [c for c in ("prompt", "chosen", "rejected", "user") if c in rows.columns]
    return rows[columns].reset_index(drop=True), mean_eps


def train_with_trl(
    model,
    tokenizer,
    frame: pd.DataFrame,
    *,
    output_dir: str,
    loss_type: str = "sigmoid",
    beta: float = 0.1,
    weighting: str = "resample",
    seed: int = 0,
    reference_model=None,
    **dpo_config_overrides,
):
    """Fine-tune a transformers causal LM with TRL's ``DPOTrainer`` and return the trainer.

    Args:
        model: a ``transformers`` causal LM (the policy; a frozen copy of it is the reference
            when ``reference_model`` is None).
        tokenizer: its tokenizer, with an EOS token (TRL appends it to responses).
        frame: output of ``jaxpref.dpo.export.preference_frame``.
        output_dir: TRL's output folder.
        loss_type: ``"sigmoid"`` (plain DPO) or ``"robust"`` (rDPO with the weighted mean flip
            rate of ``frame``).
        beta: DPO KL strength.
        weighting: how per-label weights reach TRL (see ``prepare_for_trl``).
        seed: seed of TRL and of the weighted resample.
        reference_model: optional frozen reference.
        **dpo_config_overrides: any other ``trl.DPOConfig`` field (``max_steps``,
            ``learning_rate``, ``per_device_train_batch_size``, ...).

    Returns:
        The trained ``trl.DPOTrainer`` (its ``state.log_history`` holds TRL's metrics).

    Raises:
        ImportError: without the ``hf`` extra.
        ValueError: on an unsupported ``loss_type`` or a bad ``frame``.
    """
    if loss_type not in ("sigmoid", "robust"):
        raise ValueError(
            f"`loss_type` must be 'sigmoid' or 'robust' for TRL; got {loss_type!r} (use "
            "jaxpref.dpo.train for per-label conservative/robust losses)."
        )
    try:
        import datasets
        from trl import DPOConfig, DPOTrainer
    except ImportError as error:
        raise ImportError("train_with_trl needs torch and trl: pip install 'jaxpref[hf]'.") from error
    rows, mean_eps = prepare_for_trl(frame, weighting=weighting, seed=seed)
    if reference_model is None:
        # TRL rebuilds a missing reference from the policy's hub id, which an in-memory model
        # (or an offline machine) does not have; a frozen copy is the same reference.
        import copy

        reference_model = copy.deepcopy(model).eval().requires_grad_(False)
    settings = {
        "output_dir": output_dir,
        "beta": beta,
        "loss_type": [loss_type],
        "label_smoothing": mean_eps if loss_type == "robust" else 0.0,
        "seed": seed,
        "report_to": "none",
        "save_strategy": "no",
    }
    settings.update(dpo_config_overrides)
    trainer = DPOTrainer(
        model=model,
        ref_model=reference_model,
        args=DPOConfig(**settings),
        train_dataset=datasets.Dataset.from_pandas(rows.astype({"user": str}) if "user" in rows else rows),
        processing_class=tokenizer,
    )
    trainer.train()
    return trainer
