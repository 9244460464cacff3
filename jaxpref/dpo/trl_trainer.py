"""TRL's ``DPOTrainer`` with jaxpref's per-label weights and flip rates, applied per example.

Needs the ``hf`` extra (``pip install jaxpref[hf]``: torch, trl, accelerate). ``WeightedDPOTrainer``
is a ``trl.DPOTrainer`` (TRL 1.16) that reads two more columns of the preference data:

- ``weight``: each pair's weight (e.g. ``label_attentive`` or ``eta_mean``); the loss of a batch is
  the weighted mean ``sum_i w_i l_i / sum_i w_i``, as in ``jaxpref.dpo.losses.dpo_loss``;
- ``eps``: each pair's flip rate for the ``conservative`` and ``robust`` losses.

Everything else is TRL's: tokenisation, the frozen reference (a copy of the policy, a disabled
PEFT adapter, or precomputed log-probabilities), evaluation sets, callbacks, PEFT/LoRA, mixed
precision and ``accelerate``. The trainer is returned unstarted; call ``train()`` yourself.

The losses are ``jaxpref.dpo.losses``'s, written in torch: ``sigmoid``, ``conservative`` (cDPO),
``robust`` (rDPO, flip rates capped at ``ROBUST_MAX_EPS``) and ``ipo`` on summed sequence
log-probabilities. Choose one with the ``loss_type`` argument, not ``DPOConfig.loss_type``.
With several processes each one averages its own batch (as TRL does), so the weighted mean is
per process.

Example (not run: needs torch and trl):
    >>> from trl import DPOConfig  # doctest: +SKIP
    >>> from jaxpref.dpo import preference_frame, to_dataset
    >>> from jaxpref.dpo.trl_trainer import WeightedDPOTrainer
    >>> data = to_dataset(preference_frame(model.labels_, weight="eta_mean"))  # doctest: +SKIP
    >>> trainer = WeightedDPOTrainer(policy, args=DPOConfig("out"), train_dataset=data,  # doctest: +SKIP
    ...                              processing_class=tokenizer, loss_type="sigmoid")
    >>> trainer.train()  # doctest: +SKIP
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from trl import DPOConfig, DPOTrainer

from jaxpref.dpo.export import to_dataset
from jaxpref.dpo.losses import LOSS_TYPES, ROBUST_MAX_EPS

__all__ = ["WeightedDPOTrainer", "WeightedPreferenceCollator", "per_example_dpo_losses"]

_EPS_LOSSES = ("conservative", "robust")


def per_example_dpo_losses(
    logits: torch.Tensor, beta: float, loss_type: str, eps: torch.Tensor
) -> torch.Tensor:
    """``jaxpref.dpo.losses``'s per-example losses of the DPO logit h, in torch.

    Args:
        logits: h = policy log-ratio of chosen over rejected minus the reference's, (batch,).
        beta: KL strength.
        loss_type: one of ``jaxpref.dpo.losses.LOSS_TYPES``.
        eps: per-example flip rates (used by ``conservative`` and ``robust``), (batch,).

    Returns:
        The loss of each example, (batch,).
    """
    if loss_type == "sigmoid":
        return -F.logsigmoid(beta * logits)
    if loss_type == "conservative":
        return -(1 - eps) * F.logsigmoid(beta * logits) - eps * F.logsigmoid(-beta * logits)
    if loss_type == "robust":
        eps = eps.clamp(0.0, ROBUST_MAX_EPS)
        clean, flipped = -F.logsigmoid(beta * logits), -F.logsigmoid(-beta * logits)
        return ((1 - eps) * clean - eps * flipped) / (1 - 2 * eps)
    return (logits - 1 / (2 * beta)) ** 2


@dataclasses.dataclass
class WeightedPreferenceCollator:
    """Wraps a TRL preference collator and adds ``weight`` and ``eps`` tensors to its batch.

    Examples without the columns (e.g. a plain TRL evaluation set) get weight 1 and eps 0.
    """

    collator: Callable[[list[dict[str, Any]]], dict[str, Any]]

    def __call__(self, examples: list[dict[str, Any]]) -> dict[str, Any]:
        batch = self.collator(examples)
        for name, default in (("weight", 1.0), ("eps", 0.0)):
            batch[name] = torch.tensor([float(e.get(name, default)) for e in examples], dtype=torch.float32)
        return batch


def _as_dataset(data, name: str):
    """A ``datasets`` object unchanged, a pandas preference frame converted."""
    if isinstance(data, pd.DataFrame):
        return to_dataset(data)
    if data is None or hasattr(data, "column_names"):
        return data
    if isinstance(data, dict):
        return {key: _as_dataset(value, f"{name}[{key!r}]") for key, value in data.items()}
    raise TypeError(
        f"`{name}` must be a datasets.Dataset (jaxpref.dpo.to_dataset) or a pandas frame from "
        f"jaxpref.dpo.preference_frame; got {type(data).__name__}."
    )


def _check_columns(dataset, loss_type: str) -> None:
    """Weights finite and >= 0, flip rates in range, and the columns the loss needs present."""
    columns = dataset.column_names
    if "weight" not in columns and not (loss_type in _EPS_LOSSES and "eps" in columns):
        raise ValueError(
            f"`train_dataset` has no `weight` column (columns: {columns}); export it with "
            "jaxpref.dpo.preference_frame(..., weight=...) or use trl.DPOTrainer for unweighted data."
        )
    if loss_type in _EPS_LOSSES and "eps" not in columns:
        raise ValueError(
            f"loss_type={loss_type!r} needs an `eps` column of flip rates; export it with "
            "jaxpref.dpo.preference_frame(..., eps=...)."
        )
    if "weight" in columns:
        weights = np.asarray(dataset["weight"], dtype=np.float64)
        if not (np.isfinite(weights).all() and (weights >= 0).all() and weights.sum() > 0):
            raise ValueError("`weight` must be finite and non-negative, and not all 0.")
    if "eps" in columns:
        eps = np.asarray(dataset["eps"], dtype=np.float64)
        high = 0.5 if loss_type == "robust" else 1.0
        if not (np.isfinite(eps).all() and (eps >= 0).all() and (eps <= high).all()):
            raise ValueError(f"`eps` must lie in [0, {high}] for loss_type={loss_type!r}.")


class WeightedDPOTrainer(DPOTrainer):
    """``trl.DPOTrainer`` whose loss applies per-example weights and flip rates.

    Args:
        model: the policy (a transformers causal LM, a PEFT model, or a hub id / local path).
        ref_model: the frozen reference; None: a frozen copy of ``model`` (or, for PEFT models
            and with ``precompute_ref_log_probs``, what TRL does).
        args: a ``trl.DPOConfig``; its ``loss_type`` must stay the default (use ``loss_type``
            here), and ``ld_alpha``, ``use_weighting`` and other f-divergences are not supported.
        train_dataset: preference data with ``prompt``, ``chosen``, ``rejected`` and ``weight``
            and/or ``eps`` columns: ``jaxpref.dpo.to_dataset(frame)`` or the pandas ``frame``
            from ``jaxpref.dpo.preference_frame`` itself; or already tokenised, with
            ``prompt_ids``, ``chosen_ids`` and ``rejected_ids`` lists instead of the strings.
        eval_dataset: the same kind of data (or a dict of them); ``weight``/``eps`` optional.
        loss_type: ``"sigmoid"``, ``"conservative"``, ``"robust"`` or ``"ipo"``.
        **kwargs: any other ``trl.DPOTrainer`` argument (``processing_class``, ``callbacks``,
            ``peft_config``, ``optimizers``, ...).

    Raises:
        ValueError: on an unknown ``loss_type``, a ``DPOConfig`` asking for a TRL-only loss
            feature, or data whose weights or flip rates are missing or out of range.
    """

    def __init__(
        self,
        model,
        ref_model=None,
        args: DPOConfig | None = None,
        train_dataset=None,
        eval_dataset=None,
        *,
        loss_type: str = "sigmoid",
        **kwargs,
    ):
        if loss_type not in LOSS_TYPES:
            raise ValueError(f"`loss_type` must be one of {LOSS_TYPES}; got {loss_type!r}.")
        if args is not None:
            unsupported = {
                "loss_type": (args.loss_type, ["sigmoid"]),
                "ld_alpha": (args.ld_alpha, None),
                "use_weighting": (args.use_weighting, False),
                "f_divergence_type": (str(args.f_divergence_type), "reverse_kl"),
            }
            for field, (value, default) in unsupported.items():
                if value != default and not (field == "loss_type" and value in ("sigmoid", ["sigmoid"])):
                    raise ValueError(
                        f"DPOConfig.{field}={value!r} is not supported by WeightedDPOTrainer; leave it at "
                        f"{default!r} (choose the loss with WeightedDPOTrainer(loss_type=...))."
                    )
        train_dataset = _as_dataset(train_dataset, "train_dataset")
        if train_dataset is None:
            raise ValueError("`train_dataset` is required.")
        _check_columns(train_dataset, loss_type)
        needs_reference = (
            ref_model is None
            and kwargs.get("peft_config") is None
            and not isinstance(model, str)
            and not type(model).__name__.startswith("Peft")
            and not (args is not None and args.precompute_ref_log_probs)
        )
        if needs_reference:
            # TRL would reload the reference from the policy's hub id, which an in-memory model
            # (or an offline machine) does not have; a frozen copy is the same reference.
            ref_model = copy.deepcopy(model).eval().requires_grad_(False)
        self.weighted_loss_type = loss_type
        super().__init__(
            model,
            ref_model=ref_model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=_as_dataset(eval_dataset, "eval_dataset"),
            **kwargs,
        )
        self.data_collator = WeightedPreferenceCollator(self.data_collator)

    def _prepare_dataset(self, dataset, processing_class, args, dataset_name):
        # Token ids given directly (``prompt_ids``, ``chosen_ids``, ``rejected_ids``) are used as
        # they are: no EOS appended, no re-tokenisation (e.g. a toy task whose vocabulary has no EOS).
        if {"prompt_ids", "chosen_ids", "rejected_ids"} <= set(dataset.column_names):
            return dataset
        return super()._prepare_dataset(dataset, processing_class, args, dataset_name)

    def _set_signature_columns_if_needed(self):
        super()._set_signature_columns_if_needed()
        for name in ("weight", "eps"):
            if name not in self._signature_columns:
                self._signature_columns.append(name)

    def _sequence_log_probs(self, model, inputs: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """Summed completion log-probabilities of the chosen and rejected halves of a batch."""
        model_inputs = {k: v for k, v in inputs.items() if k in ("input_ids", "attention_mask")}
        labels = inputs["input_ids"].masked_fill(inputs["completion_mask"] == 0, -100)
        outputs = model(**model_inputs, labels=labels, use_cache=False, fused_lm_head=True)
        # Prompt-learning PEFT prepends virtual tokens; keep the positions of the real tokens (as TRL).
        per_token = outputs.log_probs[:, -(inputs["completion_mask"].size(1) - 1) :]
        return per_token.sum(dim=1).chunk(2, dim=0)

    def per_example_losses(self, model, inputs: dict[str, Any]) -> dict[str, torch.Tensor]:
        """The four sequence log-probabilities and the per-example loss of a collated batch.

        Returns:
            dict of (batch,) tensors: ``chosen_logps``, ``rejected_logps``, ``ref_chosen_logps``,
            ``ref_rejected_logps``, ``losses`` (before weighting), ``weight`` and ``eps``.
        """
        chosen, rejected = self._sequence_log_probs(model, inputs)
        if self.precompute_ref_logps:
            ref_chosen, ref_rejected = inputs["ref_chosen_logps"], inputs["ref_rejected_logps"]
        else:
            # TRL's reference pass: the reference model, or the policy with its adapter disabled.
            reference_inputs = {k: v for k, v in inputs.items() if k not in ("weight", "eps")}
            ref_chosen, ref_rejected = self.compute_ref_log_probs(
                self.model if self.ref_model is None else self.ref_model, reference_inputs
            )
        logits = (chosen - rejected) - (ref_chosen - ref_rejected)
        eps = inputs["eps"].to(logits.dtype)
        return {
            "chosen_logps": chosen,
            "rejected_logps": rejected,
            "ref_chosen_logps": ref_chosen,
            "ref_rejected_logps": ref_rejected,
            "losses": per_example_dpo_losses(logits, self.beta, self.weighted_loss_type, eps),
            "weight": inputs["weight"].to(logits.dtype),
            "eps": eps,
        }

    def _compute_loss(self, model, inputs, return_outputs):
        mode = "train" if self.model.training else "eval"
        parts = self.per_example_losses(model, inputs)
        weight = parts["weight"]
        # A weighted mean, as jaxpref.dpo.losses.dpo_loss: a batch of zero weights gives loss 0.
        loss = (weight * parts["losses"]).sum() / weight.sum().clamp_min(torch.finfo(weight.dtype).tiny)
        chosen_rewards = self.beta * (parts["chosen_logps"] - parts["ref_chosen_logps"]).detach()
        rejected_rewards = self.beta * (parts["rejected_logps"] - parts["ref_rejected_logps"]).detach()
        gathered = {
            "rewards/chosen": chosen_rewards,
            "rewards/rejected": rejected_rewards,
            "rewards/accuracies": (chosen_rewards > rejected_rewards).float(),
            "rewards/margins": chosen_rewards - rejected_rewards,
            "logps/chosen": parts["chosen_logps"].detach(),
            "logps/rejected": parts["rejected_logps"].detach(),
            "weight": weight,
        }
        for name, values in gathered.items():
            self._metrics[mode][name].append(self.accelerator.gather_for_metrics(values).mean().item())
        if return_outputs:
            with torch.no_grad():
                outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"])
            return loss, outputs
        return loss
