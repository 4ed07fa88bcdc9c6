"""The joint anomaly score inside a model: a label-free damage measure its readouts can read.

:class:`raoutcome.imaging.joint_anomaly.JointAnomaly` (NumPy, scikit-learn) is fitted on a model's
training patients after training; :class:`JointAnomalyScorer` holds the fitted per-landmark PCA as
buffers and scores the joint patches of a batch (``batch["joint_patches"]``) with the same
arithmetic, so a checkpoint carries everything a prediction needs and an ensemble of fold models,
each with its own PCA, predicts like any other. A visit's score is the mean over its images of the
soft maximum over their erosion-site landmarks (:func:`raoutcome.imaging.joint_anomaly.image_anomaly`);
a visit with no scored landmark gets 0, the reference mean (scores are in reference SDs).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor, nn

from raoutcome.anatomy import view_names
from raoutcome.imaging.joint_anomaly import N_COMPONENTS, PATCH_GRID, SHIFT, JointAnomaly, erosion_site_landmarks


class JointAnomalyScorer(nn.Module):
    """Per-landmark PCA residual scores of joint patches ``[N, L, side^2]`` (NaN rows: missing) -> ``[N]``.

    The PCA is on the ``width = window^2`` centred window; the patches carry ``SHIFT`` more samples on
    each side, and a joint's residual is the lowest over the windows moved by up to ``SHIFT`` samples
    (the shift search of :class:`~raoutcome.imaging.joint_anomaly.JointAnomaly`)."""

    def __init__(self, landmarks: Sequence[str], n_components: int = N_COMPONENTS, width: int = PATCH_GRID ** 2):
        super().__init__()
        self.landmarks = tuple(landmarks)
        n = len(self.landmarks)
        self.register_buffer("mean", torch.zeros(n, width))
        self.register_buffer("components", torch.zeros(n, n_components, width))
        self.register_buffer("score_mean", torch.zeros(n))
        self.register_buffer("score_sd", torch.ones(n))
        self.register_buffer("fitted", torch.zeros(n, dtype=torch.bool))
        site = torch.zeros(len(view_names()), n, dtype=torch.bool)  # [registry view, landmark]: an erosion site
        for v, view in enumerate(view_names()):
            for name in erosion_site_landmarks(view, self.landmarks):
                site[v, self.landmarks.index(name)] = True
        self.register_buffer("erosion_site", site, persistent=False)

    def load_fitted(self, model: JointAnomaly) -> None:
        """Copy a fitted :class:`JointAnomaly`'s per-landmark PCA into the buffers."""
        k = self.components.shape[1]
        with torch.no_grad():
            self.fitted.zero_()
            for i, name in enumerate(self.landmarks):
                m = model.models_.get(name)
                if m is None:
                    continue
                comps = np.zeros((k, self.mean.shape[1]))
                comps[:len(m.components)] = m.components[:k]
                self.mean[i] = torch.as_tensor(m.mean)
                self.components[i] = torch.as_tensor(comps)
                self.score_mean[i], self.score_sd[i] = m.score_mean, m.score_sd
                self.fitted[i] = True

    @property
    def patch_width(self) -> int:
        """Samples per patch: the window and a margin of ``SHIFT`` on each side."""
        side = int(round(self.mean.shape[1] ** 0.5)) + 2 * SHIFT
        return side * side

    def landmark_scores(self, patches: Tensor) -> Tensor:
        """``[N, L]`` scores in reference SDs (NaN where the patch is missing or the landmark unfitted), computed
        by :meth:`raoutcome.imaging.joint_anomaly.JointAnomaly.score` (the one implementation of the score) on
        the buffers. Not differentiable: the anomaly is a fitted, label-free input of the readouts."""
        n, n_marks, d = patches.shape
        side, window = int(round(d ** 0.5)), int(round(self.mean.shape[1] ** 0.5))
        shift = (side - window) // 2
        if side * side != d or window + 2 * shift != side:
            raise ValueError(f"joint patches of {d} samples do not fit this scorer's {window}x{window} window")
        fitted = JointAnomaly.from_arrays(self.landmarks, *(b.detach().cpu().double().numpy() for b in (
            self.mean, self.components, self.score_mean, self.score_sd)), self.fitted.cpu().numpy(), shift)
        arr = patches.detach().cpu().double().numpy()
        out = np.full((n, n_marks), np.nan)
        if fitted.models_ and n:
            for name, s in fitted.score({m: arr[:, i] for i, m in enumerate(self.landmarks)}).items():
                out[:, self.landmarks.index(name)] = s
        return torch.as_tensor(out, dtype=torch.float32, device=patches.device)

    def forward(self, patches: Tensor, img_v: Tensor) -> Tensor:
        """Per image: the soft maximum (log mean exp) of its erosion-site landmark scores ``[N]`` (NaN when
        it has none), as :func:`raoutcome.imaging.joint_anomaly.soft_maximum`."""
        s = self.landmark_scores(patches)
        use = torch.isfinite(s) & self.erosion_site[img_v]
        n = use.sum(-1)
        lse = torch.logsumexp(torch.where(use, s, torch.full_like(s, float("-inf"))), -1)
        return torch.where(n > 0, lse - torch.log(n.clamp_min(1).float()), torch.full_like(lse, float("nan")))


__all__ = ["JointAnomalyScorer"]
