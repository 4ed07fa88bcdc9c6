"""Per-site attribution maps: which part of a joint patch drives that joint's score, pooled over the joint atlas.

The site reader (:class:`raoutcome.models.site_model.SiteModel`) scores each joint from its posed patch. Every
patch is in the same canonical frame (the view's standard frame, left orientation), so the attribution maps of one
joint from many radiographs (any patient, any visit) lie on top of each other and can be averaged: the *joint
atlas* of what drives the JSN and erosion scores at, say, ``hand_left:MCP2``.

:class:`SitePatchHeads` presents a site reader to the attribution methods of :mod:`raoutcome.attribution.methods`
(Integrated Gradients, Grad-CAM, Occlusion, via Captum): ``forward_single_image(x, joint)`` returns the expected
JSN and erosion scores of patches ``x`` read as that joint, each patch alone (the attention over the visit's
other sites is left out, so the map explains the patch itself). :func:`site_atlas` attributes the patches of each
joint and returns the mean map per joint and head, with the number of patches pooled.
"""
from __future__ import annotations

__all__ = ["SitePatchHeads", "site_atlas"]

from typing import Sequence

import numpy as np
import torch
from torch import nn

from raoutcome.models.site_model import SiteModel, ordinal_summary


class SitePatchHeads(nn.Module):
    """A site reader as ``forward_single_image(x [B, 1, g, g], joint) -> {"jsn": [B], "erosion": [B]}`` (expected
    scores; the erosion head of the joint's body part)."""

    def __init__(self, model: SiteModel):
        super().__init__()
        self.model = model
        self.encoder = model.encoder  # Grad-CAM finds its layer here
        self._index = {s: i for i, s in enumerate(model.spec.sites)}

    def forward_single_image(self, x: torch.Tensor, joint: str) -> dict[str, torch.Tensor]:
        if joint not in self._index:
            raise ValueError(f"the site reader does not know joint {joint!r}")
        n = x.shape[0]
        site = torch.full((n,), self._index[joint], dtype=torch.long, device=x.device)
        h = self.model.proj(self.model.encode(x).float()) + self.model.site_embedding(site)
        ero = "erosion_foot" if bool(self.model.is_foot[self._index[joint]]) else "erosion_hand"
        return {"jsn": ordinal_summary(self.model.heads["jsn"](h))[1],
                "erosion": ordinal_summary(self.model.heads[ero](h))[1]}


def site_atlas(model: SiteModel, patches: np.ndarray, joints: Sequence[str], heads: Sequence[str] = ("jsn", "erosion"),
               method: str = "integrated_gradients", max_per_joint: int = 32, seed: int = 0) -> dict:
    """Mean attribution map per (joint, head) over up to ``max_per_joint`` patches of that joint (drawn with ``seed``).

    ``patches``: ``float32[n, g, g]`` (as :class:`raoutcome.imaging.site_patches.SitePatches` holds them), ``joints``:
    the joint of each. Returns ``{(joint, head): {"map": float[g, g], "n": patches pooled}}``; a head a joint is not
    scored for (:func:`raoutcome.anatomy.sites_for`) is skipped."""
    from raoutcome.anatomy import sites_for
    from raoutcome.attribution.methods import attribute_batch, settings_from

    wrapped = SitePatchHeads(model).eval()
    settings = settings_from(method)
    rng = np.random.default_rng(seed)
    joints = np.asarray(joints, dtype=str)
    out = {}
    for joint in sorted(set(joints)):
        rows = np.flatnonzero(joints == joint)
        if len(rows) > max_per_joint:
            rows = np.sort(rng.choice(rows, max_per_joint, replace=False))
        view, _, site = joint.partition(":")
        x = torch.from_numpy(np.ascontiguousarray(patches[rows][:, None], dtype=np.float32))
        for head in heads:
            if site not in sites_for(view, head):
                continue
            maps = attribute_batch(wrapped, x, joint, head, settings)
            out[(joint, head)] = {"map": np.asarray(maps).mean(0), "n": int(len(rows))}
    return out
