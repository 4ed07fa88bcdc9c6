"""Closed-form readouts: a post-fit step applied after the network's ``forward``.

The network (:class:`raoutcome.models.multitask.OutcomeNetwork`) computes features and heads only. After
training, some heads are answered instead by readouts fitted in closed form on the model's training
patients (:mod:`raoutcome.training.readout`): per outcome with ``readout = "ridge"`` (HAQ, pain) a linear
map of the visit's readout features, clipped to the outcome's range, and per outcome with ``readout =
"cox"`` (risk) a linear map of the visit's own outputs (:func:`raoutcome.outcomes.risk_inputs_for`) minus
the time-to-event head's centre. :class:`PostFitReadouts` holds those maps and the joint-anomaly scorer
they may read, and applies them to the network's outputs; a visit without an image keeps the trained head.

    y_hat = clip(w . x + b, outcome range),   x = [embedding, log counts, mean pooled image features (, anomaly)]
"""
from __future__ import annotations

__all__ = ["PostFitReadouts"]

from typing import Mapping, Sequence

import torch
from torch import Tensor, nn

from raoutcome.models.anomaly_readout import JointAnomalyScorer
from raoutcome.models.density import visit_counts
from raoutcome.outcomes import outcome, readout_outcomes, risk_inputs_for


class PostFitReadouts(nn.Module):
    """The closed-form readouts of a model with ``heads``: ``readouts`` (outcome names) over visit features of
    width ``feature_dim`` (+1 with the joint anomaly read at ``anomaly_landmarks``)."""

    def __init__(self, heads: Sequence[str], readouts: Sequence[str], feature_dim: int,
                 anomaly_landmarks: Sequence[str] = ()):
        super().__init__()
        bad = [h for h in readouts if h not in readout_outcomes() or h not in heads]
        if bad:
            raise ValueError(f"readouts {bad}: a linear readout needs a head that is switched on, one of "
                             f"{', '.join(readout_outcomes())}")
        if anomaly_landmarks and not readouts:
            raise ValueError("anomaly_landmarks: only the closed-form readouts read the joint anomaly; "
                             "name some readouts")
        self.risk_inputs = risk_inputs_for(heads, bool(anomaly_landmarks))
        if any(outcome(h).readout == "cox" for h in readouts) and not self.risk_inputs:
            raise ValueError("the risk readout reads the outputs of heads marked risk_input (SvdH, HAQ, pain): "
                             "switch one of them on")
        self.feature_dim = feature_dim + bool(anomaly_landmarks)
        self.joint_anomaly = JointAnomalyScorer(anomaly_landmarks) if anomaly_landmarks else None
        self.readouts = nn.ModuleDict({h: nn.Linear(len(self.risk_inputs) if outcome(h).readout == "cox"
                                                    else self.feature_dim, 1) for h in readouts})

    def visit_anomaly(self, joint_patches: Tensor | None, img_b: Tensor, img_t: Tensor, img_v: Tensor,
                      n_patients: int, n_visits: int) -> Tensor:
        """``[B, T]``: the mean joint anomaly over each visit's scored images; 0 (the reference mean) where none."""
        if joint_patches is None:
            raise ValueError("this model's readouts read the joint anomaly: pass joint_patches (a dataset with "
                             "patch_landmarks, which needs the cohort's landmarks table)")
        per_image = self.joint_anomaly(joint_patches, img_v)
        ok = torch.isfinite(per_image)
        total = visit_counts(torch.where(ok, per_image, torch.zeros_like(per_image))[:, None], img_b, img_t,
                             n_patients, n_visits)[..., 0]
        n = visit_counts(ok.float()[:, None], img_b, img_t, n_patients, n_visits)[..., 0]
        return torch.where(n > 0, total / n.clamp_min(1), torch.zeros_like(total))

    def risk_features(self, out: Mapping[str, Tensor], anomaly: Tensor | None) -> Tensor:
        """``[B, T, len(risk_inputs)]``: the visit's outputs (``log_x`` = ``log1p`` of ``x``) and joint anomaly."""
        cols = [anomaly if name == "joint_anomaly" else torch.log1p(out[name[4:]]) if name.startswith("log_")
                else out[name] for name in self.risk_inputs]
        return torch.stack([c.float() for c in cols], -1)

    def forward(self, out: dict[str, Tensor], img_b: Tensor, img_t: Tensor, img_v: Tensor,
                joint_patches: Tensor | None, centers: Mapping[str, Tensor],
                return_features: bool = False) -> dict[str, Tensor]:
        """Apply the readouts to the network's ``out`` (which must hold ``readout_features`` and ``has_image``:
        ``forward(..., return_readout_features=True)``). ``centers``: the time-to-event heads' centres.
        ``return_features`` keeps ``readout_features`` (with the anomaly) and adds ``risk_features``."""
        out = dict(out)
        x, has_image = out.pop("readout_features"), out.pop("has_image")
        n_patients, n_visits = has_image.shape
        anomaly = None
        if self.joint_anomaly is not None:
            anomaly = self.visit_anomaly(joint_patches, img_b, img_t, img_v, n_patients, n_visits)
            x = torch.cat([x, anomaly[..., None]], -1)
        for name, readout in self.readouts.items():
            spec = outcome(name)
            if spec.readout == "ridge":
                linear = readout(x).squeeze(-1).clamp(spec.lower, spec.upper)
                out[name] = torch.where(has_image, linear, out[name])
        cox = [h for h in self.readouts if outcome(h).readout == "cox"]
        if cox or return_features:
            risk_x = self.risk_features(out, anomaly)
            for name in cox:
                lp = self.readouts[name](risk_x).squeeze(-1) - centers[name]
                out[name] = torch.where(has_image, lp, out[name])
            if return_features:
                out["risk_features"] = risk_x
        if return_features:
            out["readout_features"] = x
        return out
