"""Landmarks for studies pulled from a PACS: detect them, and let the landmark QC decide what is scored.

A site-route run (``[model] route = "sites"``, issue 23) reads each SvdH joint from a patch posed by the
image's landmarks. Studies pulled from a PACS carry none, so ``pacs score`` runs the library's landmark
detector on every hand and foot image of a chunk (:func:`raoutcome.workflows.landmarks.detect_images`:
the shipped default detector, the run's own ``landmark_detector.safetensors`` or one given on the command
line) and hands the detection to the landmark QC (:mod:`raoutcome.imaging.landmark_qc`):

- an image with an image-level flag in :data:`EXCLUDING_FLAGS` (blank, low median confidence, the other
  body part, a left/right mix-up, upside down, no plausible hand/foot configuration) is **not scored**:
  none of its landmarks reaches the site reader, so none of its joints is in the SR, and the visit's
  totals use the other side's stand-in (:func:`raoutcome.evaluation.joints.visit_totals`);
- a landmark with its own flag (``low_confidence``, ``outlier``) is **dropped**: its joint is not scored,
  the rest of the image is;
- a ``rotated`` image (the pose undoes any rotation) is scored and **flagged**.

Every image's decision (:class:`ImageQc`) goes into the study's SR (a measurement group per image,
:func:`raoutcome.interop.sr.build_report`), so a reader sees which images were read and why others were not.
"""
from __future__ import annotations

__all__ = ["EXCLUDING_FLAGS", "ImageQc", "default_detector_for", "detect_and_gate", "RUN_DETECTOR"]

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from raoutcome.anatomy import body_part

#: Image-level QC flags that keep an image from being scored (``rotated`` only flags it: the pose undoes it).
EXCLUDING_FLAGS = frozenset({"blank", "low_confidence", "looks_like_foot", "looks_like_hand", "looks_like_other_part",
                             "mirrored", "upside_down", "implausible"})
#: A run folder's own detector (used instead of the shipped one when present).
RUN_DETECTOR = "landmark_detector.safetensors"


@dataclass(frozen=True)
class ImageQc:
    """The landmark QC's verdict on one image: its image-level flags, the landmarks dropped for their own
    flags (``name: flag;flag``), and whether the image is scored."""

    path: str
    view: str
    flags: tuple[str, ...]
    dropped: tuple[str, ...]
    scored: bool

    @property
    def reason(self) -> str:
        """Plain words for a ledger or an error line."""
        if self.scored:
            return "scored" + (f" (flagged: {', '.join(self.flags)})" if self.flags else "")
        return f"{self.view} image not scored: landmark QC flagged it {', '.join(self.flags)}"


def default_detector_for(run: str | Path, detector: str | Path | None = None) -> Path | None:
    """The detector ``pacs score`` uses for ``run``: ``detector`` if given, else the run folder's own
    :data:`RUN_DETECTOR`, else None (the shipped default)."""
    if detector is not None:
        return Path(detector)
    own = Path(run) / RUN_DETECTOR
    return own if own.is_file() else None


def detect_and_gate(cohort, model, batch: int = 16) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, ImageQc]]:
    """Detect the landmarks of every image of a view ``model`` knows and apply the QC rules above.

    Returns ``(landmarks, detected, qc)``: the landmarks to pose the site patches from (only scored images,
    only unflagged landmarks), every detected landmark (the record: ``path, landmark, x, y, confidence, qc``)
    and each image's :class:`ImageQc` keyed by its path. Pixels are read one batch at a time.
    """
    import torch

    from raoutcome.imaging.io import read_image
    from raoutcome.workflows.landmarks import LANDMARK_COLUMNS, detect_images

    known = cohort.images[cohort.images["view"].map(body_part).isin(model.spec.parts)]
    paths, views = known["path"].astype(str).tolist(), known["view"].astype(str).tolist()
    rows: list[dict] = []
    keep: list[bool] = []
    verdicts: dict[str, ImageQc] = {}
    with torch.inference_mode():
        for i in range(0, len(paths), batch):
            chunk = list(zip(paths[i:i + batch], views[i:i + batch]))
            items = [(read_image(cohort.image_path(p)).pixels, v) for p, v in chunk]
            for (path, view), det in zip(chunk, detect_images(model, items)):
                flags = tuple(det.qc.flags)
                scored = not (set(flags) & EXCLUDING_FLAGS)
                dropped = tuple(f"{name}: {';'.join(f)}" for name, f in sorted(det.qc.landmark_flags.items()))
                verdicts[path] = ImageQc(path, view, flags, dropped, scored)
                for row in det.rows(path):
                    rows.append(row)
                    keep.append(scored and row["landmark"] not in det.qc.landmark_flags)
    detected = pd.DataFrame(rows, columns=LANDMARK_COLUMNS)
    return detected[keep].reset_index(drop=True), detected, verdicts
