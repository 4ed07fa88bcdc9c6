"""Multitask loss with per-task masks for missing labels, fixed or learned weights.

Targets arrive as NaN where a label is missing; every term only averages over the
entries that exist (existing visit *and* finite label), so a masked label can take any
value without changing the loss or its gradients. A task with no label in the batch
contributes an exact zero that is still connected to the graph (DDP needs every
parameter to receive a gradient).

* Regression terms are mean squared errors of standardised values in each outcome's
  ``loss_space`` (:mod:`raoutcome.outcomes`): SvdH (total, JSN, erosion) in ``log1p`` space,
  HAQ and pain as they are, each divided by a scale — the standard deviation of that
  target over the training patients (passed as ``scales`` by the trainer; defaults: each
  outcome's ``scale``, typical RA-cohort values) — so every task starts on the same
  footing, whatever its units. An outcome with parts (SvdH) weighs each output's term by
  its ``loss_weights`` (total 1, each subscore 0.5).
* Survival: Cox negative partial log-likelihood (torchsurv, Efron ties) of one risk
  per patient, read at the visit ``risk_visit`` (the last visit at or before the event or
  censoring time, chosen by the dataset) against ``event_time`` / ``event_observed``.
* Joint-level density (optional, ``joint_weight > 0``): where the batch carries per-joint
  readings located in the image (``joint_points``, see
  :mod:`raoutcome.imaging.joint_targets`), every cell of the JSN and erosion lesion maps
  should hold the damage of the joints inside it — the density-map regression of
  Lempitsky & Zisserman (2010) with the joint readings as the dots. Added with a fixed
  weight outside the task weighting (it is a training signal, not an outcome).
* Progression ranking (optional, ``rank_weight > 0``): radiographic damage is irreversible, so
  of two radiographs of the same view of one patient the later should carry at least the damage
  load of the earlier. A RankNet term (Burges et al. 2005) on the ``log1p`` of each image's
  damage count (the sum of the lesion maps named by ``rank_channels``: JSN + erosion with the
  SvdH head, the first free map without it) asks the later image of every such pair to score
  higher. It needs no human score, only visit times, so it gives the "no human score" model a
  label-free pull towards features that grow with disease duration (temporal-order
  self-supervision, as in longitudinal self-supervised learning, Zhao et al. 2021).
* Weighting: ``"fixed"`` (``sum_k w_k L_k``) or ``"uncertainty"`` (Kendall, Gal & Cipolla
  2018: ``sum_k w_k (exp(-s_k) L_k + s_k) / 2`` with learned ``s_k = log sigma_k^2``).
"""
from __future__ import annotations

from typing import Callable, Mapping, Sequence

import numpy as np
import torch
from torch import Tensor, nn
from torchsurv.loss.cox import neg_partial_log_likelihood

from raoutcome.outcomes import WEIGHTINGS, event_outcome, outcome, outcome_names, outcomes


def default_scales(heads: Sequence[str] | None = None) -> dict[str, float]:
    """Output -> default loss scale (the outcome's ``scale``) of every per-visit output of these heads."""
    return {o: spec.scale for spec in outcomes(heads) if spec.per_visit for o in spec.outputs}


def _zero(like: Tensor) -> Tensor:
    return like.sum() * 0.0


def masked_mse(pred: Tensor, target: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
    """(mean squared error over entries where ``mask`` and ``target`` is finite, their count)."""
    valid = mask & torch.isfinite(target)
    n = valid.sum()
    if int(n) == 0:
        return _zero(pred), n
    diff = torch.where(valid, pred - torch.nan_to_num(target), torch.zeros_like(pred))
    return diff.pow(2).sum() / n, n


def _log1p(x):
    """``log1p`` of the non-negative part, of a tensor or a NumPy array."""
    return torch.log1p(x.clamp_min(0)) if isinstance(x, Tensor) else np.log1p(np.clip(x, 0, None))


#: loss space -> the transform applied to prediction and label before the scaled squared error
SPACE_TRANSFORMS: dict[str, Callable[[Tensor], Tensor]] = {"identity": lambda x: x, "log1p": _log1p}


def regression_loss(name: str, out: Mapping[str, Tensor], batch: Mapping[str, Tensor],
                    scales: Mapping[str, float] | None = None) -> Tensor:
    """Weighted mean over the outcome's outputs of the masked MSE of ``f(pred) / s`` and ``f(label) / s``
    (``f`` the outcome's loss-space transform, ``s`` the output's scale); outputs without labels in the
    batch drop out of the weighting."""
    spec = outcome(name)
    f = SPACE_TRANSFORMS[spec.loss_space]
    mask = batch["visit_mask"]
    total, weight = _zero(out[name]), 0.0
    for output, w in spec.loss_weights.items():
        sc = float((scales or {}).get(output, spec.scale))
        loss, n = masked_mse(f(out[output]) / sc, f(batch[f"target_{output}"]) / sc, mask)
        if int(n) > 0:
            total, weight = total + w * loss, weight + w
    return total / weight if weight else total


def patient_risk(risk: Tensor, risk_visit: Tensor) -> Tensor:
    """One risk per patient: ``risk[b, risk_visit[b]]``."""
    return risk.gather(1, risk_visit.long()[:, None]).squeeze(1)


def cox_loss(out: Mapping[str, Tensor], batch: Mapping[str, Tensor], name: str | None = None) -> Tensor:
    """Cox negative partial log-likelihood (Efron ties) of each patient's ``out[name]`` (default: the registered
    time-to-event outcome) at its risk visit."""
    risk = patient_risk(out[name or event_outcome().name], batch["risk_visit"])
    time, observed = batch["event_time"], batch["event_observed"]
    valid = torch.isfinite(time) & torch.isfinite(observed)
    if int(valid.sum()) < 2 or float(observed[valid].sum()) == 0:
        return _zero(risk)
    return neg_partial_log_likelihood(risk[valid].float(), observed[valid] > 0.5, time[valid].float(),
                                      ties_method="efron", reduction="mean")


LossFn = Callable[[str, Mapping[str, Tensor], Mapping[str, Tensor], "Mapping[str, float] | None"], Tensor]
#: loss space -> loss of one outcome, ``fn(name, out, batch, scales)``
LOSSES: dict[str, LossFn] = {"identity": regression_loss, "log1p": regression_loss,
                              "cox": lambda name, out, batch, scales=None: cox_loss(out, batch, name)}


def register_loss(loss_space: str, fn: LossFn) -> LossFn:
    """Make ``fn`` the loss of every outcome whose ``loss_space`` is ``loss_space``."""
    LOSSES[loss_space] = fn
    return fn


def task_loss(name: str, out: Mapping[str, Tensor], batch: Mapping[str, Tensor],
              scales: Mapping[str, float] | None = None) -> Tensor:
    """The loss of outcome ``name``, chosen by its spec's ``loss_space``."""
    if name not in outcome_names():
        raise ValueError(f"unknown task {name!r}")
    space = outcome(name).loss_space
    if space not in LOSSES:
        raise ValueError(f"outcome {name!r}: no loss for loss space {space!r} (add one with register_loss)")
    return LOSSES[space](name, out, batch, scales)


def joint_density_targets(maps: Tensor, points: Tensor) -> Tensor:
    """The cell counts the maps ``[N, k, h, w]`` should hold: each point ``(image, channel,
    x, y, score)`` (``x, y`` in [0, 1) of the input square) added to the cell it falls in."""
    n, _, h, w = maps.shape
    target = maps.new_zeros((n, 2, h, w), dtype=torch.float32)
    if len(points):
        img, ch = points[:, 0].long(), points[:, 1].long()
        ix = (points[:, 2] * w).floor().long().clamp(0, w - 1)
        iy = (points[:, 3] * h).floor().long().clamp(0, h - 1)
        target.index_put_((img, ch, iy, ix), points[:, 4].float(), accumulate=True)
    return target


def joint_density_loss(maps: Tensor, points: Tensor, supervised: Tensor) -> Tensor:
    """Squared ``log1p`` error between the first two lesion maps (JSN, erosion) and the per-cell
    joint readings, summed over cells and channels and averaged over the images whose joints
    are all located (``supervised``). Summing keeps each cell's pull independent of the map
    size (a mean over 8x8 cells would weaken the term 16-fold against a 2x2 map)."""
    if maps.ndim == 3:  # tokens: a square grid
        side = int(round(maps.shape[-1] ** 0.5))
        if side * side != maps.shape[-1]:
            raise ValueError(f"joint density loss needs a square token grid, got {maps.shape[-1]} tokens")
        maps = maps.view(*maps.shape[:2], side, side)
    if int(supervised.sum()) == 0:
        return _zero(maps)
    target = joint_density_targets(maps, points)
    diff = torch.log1p(maps[:, :2].float()) - torch.log1p(target)
    return diff[supervised].pow(2).flatten(1).sum(1).mean()


RANK_TEMPERATURE = 0.1  # log1p-count difference at which a pair's order is ~73 % certain (logit 1)


def progression_pairs(img_b: Tensor, img_t: Tensor, img_v: Tensor, time: Tensor) -> tuple[Tensor, Tensor]:
    """(earlier, later) image indices of every pair of images of the same patient and view whose
    visit times differ (``time[b, t]`` in years)."""
    t_img = time[img_b, img_t]
    same = (img_b[:, None] == img_b[None, :]) & (img_v[:, None] == img_v[None, :])
    later = same & (t_img[None, :] > t_img[:, None])
    return later.nonzero(as_tuple=True)


def progression_rank_loss(counts: Tensor, img_b: Tensor, img_t: Tensor, img_v: Tensor, time: Tensor,
                          temperature: float = RANK_TEMPERATURE) -> Tensor:
    """Mean RankNet loss ``softplus(-(s_later - s_earlier) / temperature)`` over the pairs of
    :func:`progression_pairs`, with ``s = log1p(count)`` of each image's damage count ``[N]``."""
    early, late = progression_pairs(img_b, img_t, img_v, time)
    if len(early) == 0:
        return _zero(counts)
    s = torch.log1p(counts.float())
    return torch.nn.functional.softplus(-(s[late] - s[early]) / temperature).mean()


class MultitaskLoss(nn.Module):
    """Weighted sum of the per-head losses; ``forward`` returns ``(total, parts)``.

    ``parts`` holds each head's unweighted loss (detached floats for logging).
    """

    def __init__(self, heads: Sequence[str], weighting: str = "uncertainty",
                 weights: Mapping[str, float] | None = None, scales: Mapping[str, float] | None = None,
                 joint_weight: float = 0.0, rank_weight: float = 0.0, rank_channels: Sequence[int] = (0,)):
        super().__init__()
        self.joint_weight = float(joint_weight)
        self.rank_weight = float(rank_weight)
        self.rank_channels = tuple(int(c) for c in rank_channels)
        unknown = [h for h in heads if h not in outcome_names()]
        if unknown:
            raise ValueError(f"unknown head(s) {unknown}")
        if weighting not in WEIGHTINGS:
            raise ValueError(f"weighting must be one of {WEIGHTINGS}, not {weighting!r}")
        self.heads = tuple(heads)
        self.weighting = weighting
        weights = dict(weights or {})
        self.register_buffer("weights", torch.tensor([float(weights.get(h, 1.0)) for h in self.heads]))
        # plain numbers, recomputed from the training patients at every (re)start: not part of the state
        self.scales = {k: float(v) for k, v in {**default_scales(self.heads), **dict(scales or {})}.items()
                       if k in default_scales(self.heads)}
        if weighting == "uncertainty":
            self.log_vars = nn.Parameter(torch.zeros(len(self.heads)))

    def forward(self, out: Mapping[str, Tensor], batch: Mapping[str, Tensor]) -> tuple[Tensor, dict[str, float]]:
        losses = [task_loss(h, out, batch, self.scale_map()) for h in self.heads]
        stacked = torch.stack([loss.float() for loss in losses])
        if self.weighting == "uncertainty":
            total = (0.5 * self.weights * (torch.exp(-self.log_vars) * stacked + self.log_vars)).sum()
        else:
            total = (self.weights * stacked).sum()
        parts = {h: float(loss.detach()) for h, loss in zip(self.heads, losses)}
        if self.joint_weight > 0 and "lesion_density" in out and "joint_points" in batch:
            joint = joint_density_loss(out["lesion_density"], batch["joint_points"], batch["joint_supervised"])
            total = total + self.joint_weight * joint
            parts["joints"] = float(joint.detach())
        if self.rank_weight > 0 and "lesion_density" in out:
            maps = out["lesion_density"]
            counts = maps[:, list(self.rank_channels)].flatten(1).sum(1)
            rank = progression_rank_loss(counts, batch["img_b"], batch["img_t"], batch["img_v"], batch["time"])
            total = total + self.rank_weight * rank
            parts["rank"] = float(rank.detach())
        return total, parts

    def wants_maps(self, batch: Mapping[str, Tensor]) -> bool:
        """Whether the model should return its lesion maps for ``batch``: the ranking term is on, or the
        joint density term is on and the batch carries located joint readings."""
        return self.rank_weight > 0 or (self.joint_weight > 0 and "joint_points" in batch)

    def scale_map(self) -> dict[str, float]:
        return dict(self.scales)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        state_dict.pop(prefix + "scales", None)  # a buffer in checkpoints written before the outcome registry
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def task_weights(self) -> dict[str, float]:
        """The effective weight on each task loss (for logs)."""
        w = self.weights.detach()
        if self.weighting == "uncertainty":
            w = 0.5 * w * torch.exp(-self.log_vars.detach())
        return {h: float(v) for h, v in zip(self.heads, w)}


__all__ = ["MultitaskLoss", "progression_pairs", "progression_rank_loss", "joint_density_loss", "joint_density_targets",
           "masked_mse", "cox_loss", "patient_risk", "task_loss", "WEIGHTINGS", "default_scales", "regression_loss",
           "register_loss", "LOSSES"]
