"""A torch ``Dataset`` over patients: each item is one patient's whole visit sequence.

An item holds every image that exists for the patient (``images [n, 1, S, S]`` with the
visit and view index of each), the visit times, the per-visit outcome targets (NaN where
missing) and the patient's time-to-event target. Missing views are simply absent (the
model masks them); missing visits do not exist. :func:`collate_patients` concatenates
items into the batch dict the model and the loss read (``LongitudinalOutcomeModel.forward_batch``).

Pixels come from a loader with ``.get(path, view) -> float32[1, S, S]`` in [0, 1] —
normally :class:`raoutcome.imaging.cache.ImageCache`, so only the first epoch decodes.
This module knows nothing about outcomes beyond copying the cohort columns the outcome registry names
(:func:`raoutcome.outcomes.output_columns`, as ``target_<output>``).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from raoutcome.anatomy import DEFORMITY_EVENT, view_names
from raoutcome.imaging.joint_targets import JointTargets, shift_points
from raoutcome.outcomes import RISK_VISIT_RULES, output_columns


def target_columns() -> dict[str, str]:
    """Batch key (``target_<output>``) -> cohort ``visits`` column, for every registered per-visit output."""
    return {f"target_{k}": v for k, v in output_columns().items()}



class ImageLoader(Protocol):
    def get(self, path, view: str | None = None) -> np.ndarray: ...


@dataclass(frozen=True)
class Augment:
    """Light, label-preserving augmentation drawn per (seed, epoch, patient, image).

    A random translation of up to ``shift`` pixels (edge filled with 0, the background)
    and a random contrast/brightness change (``x * c + b``, clipped to [0, 1]).
    """

    shift: int = 4
    contrast: float = 0.1
    brightness: float = 0.05

    def __call__(self, image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        return self.apply(image, rng)[0]

    def apply(self, image: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, tuple[int, int]]:
        """(augmented image, the translation ``(dy, dx)`` in pixels) — point targets move with it."""
        out = image
        dy = dx = 0
        if self.shift:
            dy, dx = (int(v) for v in rng.integers(-self.shift, self.shift + 1, size=2))
            out = _translate(out, dy, dx)
        c = 1.0 + rng.uniform(-self.contrast, self.contrast)
        b = rng.uniform(-self.brightness, self.brightness)
        return np.clip(out * np.float32(c) + np.float32(b), 0.0, 1.0).astype(np.float32, copy=False), (dy, dx)


def _translate(image: np.ndarray, dy: int, dx: int) -> np.ndarray:
    out = np.zeros_like(image)
    h, w = image.shape[-2:]
    ys, yd = (slice(0, h - dy), slice(dy, h)) if dy >= 0 else (slice(-dy, h), slice(0, h + dy))
    xs, xd = (slice(0, w - dx), slice(dx, w)) if dx >= 0 else (slice(-dx, w), slice(0, w + dx))
    out[..., yd, xd] = image[..., ys, xs]
    return out


class PatientSequences(Dataset):
    """One item per patient (in ``patient_ids`` order, default: every patient of the cohort).

    ``views``: restrict to these views (default: all). ``augment``: an :class:`Augment`
    or None. ``risk_visit``: which visit's risk represents the patient in the Cox loss —
    ``"last_before_event"`` (last visit at or before the event/censoring time; never an
    image taken after the event), ``"baseline"`` or ``"last"``. Call :meth:`set_epoch`
    before each epoch so augmentation differs between epochs yet is reproducible.
    ``patch_landmarks``: also give each image's joint patches at these landmarks
    (``joint_patches [n_images, len(patch_landmarks), PATCH_SIDE**2]``, NaN rows where the image lacks
    one; :class:`~raoutcome.imaging.landmark_patches.LandmarkPatches`), for a model whose readouts
    read the joint anomaly. ``loader`` must then have ``source_shape`` (as ``ImageCache`` does).
    """

    def __init__(self, cohort, loader: ImageLoader, patient_ids: Sequence[str] | None = None,
                 views: Sequence[str] | None = None, augment: Augment | None = None, seed: int = 0,
                 event: str = DEFORMITY_EVENT, risk_visit: str = "last_before_event",
                 joint_targets: JointTargets | None = None, patch_landmarks: Sequence[str] = ()):
        if risk_visit not in RISK_VISIT_RULES:
            raise ValueError(f"risk_visit must be one of {RISK_VISIT_RULES}, not {risk_visit!r}")
        self.loader = loader
        self.joint_targets = joint_targets if joint_targets is not None and joint_targets.available else None
        self.landmark_patches = None
        if patch_landmarks:
            from raoutcome.imaging.landmark_patches import LandmarkPatches

            self.landmark_patches = LandmarkPatches(cohort, patch_landmarks, loader.source_shape)
        self.augment = augment
        self.seed = int(seed)
        self.epoch = 0
        pids = [str(p) for p in (patient_ids if patient_ids is not None else cohort.patients["patient_id"])]
        self.patient_ids = pids
        pos = pd.Series(np.arange(len(pids)), index=pd.Index(pids))
        visits = cohort.visits[cohort.visits["patient_id"].isin(pos.index)]
        visits = visits.sort_values(["patient_id", "time_years"], kind="stable")
        visits = visits.assign(_p=pos.loc[visits["patient_id"]].to_numpy(),
                               _t=visits.groupby("patient_id", sort=False).cumcount().to_numpy())
        self.visit_ids: list[list[str]] = [[] for _ in pids]
        self.times: list[np.ndarray] = [np.zeros(0, np.float32) for _ in pids]
        self.targets: list[dict[str, np.ndarray]] = [{} for _ in pids]
        for p, grp in visits.groupby("_p", sort=False):
            self.visit_ids[p] = grp["visit_id"].astype(str).tolist()
            self.times[p] = grp["time_years"].to_numpy(np.float32)
            self.targets[p] = {key: (grp[col].to_numpy(np.float32) if col in grp else
                                     np.full(len(grp), np.nan, np.float32))
                               for key, col in target_columns().items()}
        # images: (absolute path, view name, visit index, view index) per patient
        img = cohort.images[cohort.images["patient_id"].isin(pos.index)]
        if views is not None:
            img = img[img["view"].isin(list(views))]
        key = visits.set_index(["patient_id", "visit_id"])["_t"]
        img = img.join(key, on=["patient_id", "visit_id"], how="inner")
        img = img.drop_duplicates(["patient_id", "visit_id", "view"])
        view_index = {v: i for i, v in enumerate(view_names())}  # registry order (models map it to their rows)
        self.images: list[list[tuple[str, str, int, int]]] = [[] for _ in pids]
        self._image_keys: dict[str, tuple[str, str, str, str]] = {}  # abs path -> (patient, visit, view, rel path)
        for pid, vid, path, view, t in zip(img["patient_id"], img["visit_id"], img["path"], img["view"], img["_t"]):
            abs_path = str(cohort.image_path(path))
            self.images[pos[pid]].append((abs_path, view, int(t), view_index[view]))
            self._image_keys[abs_path] = (str(pid), str(vid), str(view), str(path))
        for items in self.images:
            items.sort(key=lambda it: (it[2], it[3]))
        # time-to-event target
        self.event_time = np.full(len(pids), np.nan, np.float32)
        self.event_observed = np.full(len(pids), np.nan, np.float32)
        events = cohort.event_table(event)
        events = events[events["patient_id"].isin(pos.index)]
        idx = pos.loc[events["patient_id"]].to_numpy()
        self.event_time[idx] = events["time_years"].to_numpy(np.float32)
        self.event_observed[idx] = events["observed"].to_numpy(np.float32)
        self.risk_visit = np.zeros(len(pids), np.int64)
        for p, t in enumerate(self.times):
            if len(t) == 0:
                continue
            if risk_visit == "last":
                self.risk_visit[p] = len(t) - 1
            elif risk_visit == "last_before_event" and np.isfinite(self.event_time[p]):
                self.risk_visit[p] = max(int(np.searchsorted(t, self.event_time[p] + 1e-6, side="right")) - 1, 0)

    def __len__(self) -> int:
        return len(self.patient_ids)

    @property
    def n_images(self) -> int:
        return sum(len(i) for i in self.images)

    @property
    def n_visits(self) -> int:
        return sum(len(t) for t in self.times)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __getitem__(self, i: int) -> dict:
        items = self.images[i]
        rng = np.random.default_rng([self.seed, self.epoch, i]) if self.augment is not None else None
        pixels, points, patches = [], [], []
        for path, view, _, _ in items:
            arr = np.asarray(self.loader.get(path, view), dtype=np.float32)
            if self.landmark_patches is not None:  # from the image as stored, before any augmentation
                patches.append(self.landmark_patches.patches(self._image_keys[path][3], path, view, arr))
            shift = (0, 0)
            if rng is not None:
                arr, shift = self.augment.apply(arr, rng)
            pixels.append(arr)
            if self.joint_targets is not None:
                pts = self.joint_targets.points(*self._image_keys[path], path)
                if pts is not None and shift != (0, 0):
                    pts = shift_points(pts, shift[0], shift[1], arr.shape[-1])
                points.append(pts)
        item = {
            "images": np.stack(pixels) if pixels else np.zeros((0, 1, 1, 1), np.float32),
            "img_t": np.array([it[2] for it in items], np.int64),
            "img_v": np.array([it[3] for it in items], np.int64),
            "time": self.times[i],
            "targets": self.targets[i],
            "event_time": self.event_time[i],
            "event_observed": self.event_observed[i],
            "risk_visit": self.risk_visit[i],
            "index": i,
        }
        if self.joint_targets is not None:
            item["joint_points"] = points
        if self.landmark_patches is not None:
            lp = self.landmark_patches
            item["joint_patches"] = np.stack(patches) if patches else np.zeros((0, len(lp.names), lp.width), np.float32)
        return item


def collate_patients(items: list[dict]) -> dict[str, torch.Tensor]:
    """Concatenate patient items: flat image tensor + indices, visits padded to the longest."""
    n_vis = max((len(it["time"]) for it in items), default=0)
    n_vis = max(n_vis, 1)
    b = len(items)
    time = np.zeros((b, n_vis), np.float32)
    mask = np.zeros((b, n_vis), bool)
    targets = {k: np.full((b, n_vis), np.nan, np.float32) for it in items for k in it["targets"]}
    for j, it in enumerate(items):
        t = len(it["time"])
        time[j, :t] = it["time"]
        mask[j, :t] = True
        for k, v in it["targets"].items():
            targets[k][j, :t] = v
    imgs = [it["images"] for it in items if len(it["img_t"])]
    images = np.concatenate(imgs) if imgs else np.zeros((0, 1, 1, 1), np.float32)
    batch = {
        "images": torch.from_numpy(images),
        "img_b": torch.from_numpy(np.concatenate([np.full(len(it["img_t"]), j, np.int64)
                                                  for j, it in enumerate(items)])),
        "img_t": torch.from_numpy(np.concatenate([it["img_t"] for it in items])),
        "img_v": torch.from_numpy(np.concatenate([it["img_v"] for it in items])),
        "time": torch.from_numpy(time),
        "visit_mask": torch.from_numpy(mask),
        "event_time": torch.tensor([float(it["event_time"]) for it in items]),
        "event_observed": torch.tensor([float(it["event_observed"]) for it in items]),
        "risk_visit": torch.tensor([int(it["risk_visit"]) for it in items], dtype=torch.long),
        "index": torch.tensor([int(it["index"]) for it in items], dtype=torch.long),
    }
    batch.update({k: torch.from_numpy(v) for k, v in targets.items()})
    if any("joint_patches" in it for it in items):
        batch["joint_patches"] = torch.from_numpy(np.concatenate([it["joint_patches"] for it in items]))
    if any("joint_points" in it for it in items):
        batch.update(_collate_points([p for it in items for p in it.get("joint_points", [None] * len(it["img_t"]))]))
    return batch


def _collate_points(per_image: list[np.ndarray | None]) -> dict[str, torch.Tensor]:
    """``joint_points [P, 5]`` (image index, channel, x, y, score) and ``joint_supervised [N]``."""
    rows = [np.column_stack([np.full(len(p), n, np.float32), p]) for n, p in enumerate(per_image) if p is not None]
    points = np.concatenate(rows).astype(np.float32) if rows else np.zeros((0, 5), np.float32)
    return {"joint_points": torch.from_numpy(points),
            "joint_supervised": torch.tensor([p is not None for p in per_image], dtype=torch.bool)}


def batch_to(batch: dict[str, torch.Tensor], device: torch.device | str) -> dict[str, torch.Tensor]:
    """Move every tensor of a batch to ``device`` (non-blocking where pinned)."""
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}
