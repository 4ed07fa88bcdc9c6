"""Label-free joint damage score: how unusual each joint looks beside the same joint in other radiographs.

Erosions and narrowed joint spaces are local changes of a joint's shape. Bone density and exposure
change its brightness and contrast. So this score works on shape alone. For every landmark it
samples a square patch around the joint (right-side views mirrored to look like left ones). Each
patch is z-normalised, which removes the mean grey level and the contrast, and so bone density and
exposure. The patch is then projected onto the first ``n_components`` principal components of the
same joint in a reference set of radiographs. The joint's raw score is the log mean squared
residual: how much of the patch a typical joint cannot explain. PCA is the linear autoencoder of
reconstruction-based anomaly detection (Baur et al. 2021, "Autoencoders for unsupervised anomaly
segmentation in brain MR images").

Five refinements make it a damage measure rather than a measure of anything unusual:

* **robust reference** (``trim``): the PCA is fitted again on the reference patches it reconstructs
  best (by default the 60 %), so damage that is common in the reference does not become part of
  "typical" (the idea of trimmed / robust PCA);
* **standardised joints**: each landmark's score is expressed in SDs of the reference's scores at that
  landmark, so joints whose appearance varies more do not dominate;
* **a soft maximum over erosion sites**: an image's score (``anomaly``) is the log mean exp of its
  landmark scores at the SvdH *erosion* sites of its view (:func:`raoutcome.anatomy.sites_for`), so a
  few clearly damaged joints count, where a plain mean would dilute them among the intact ones (damage
  is the sum over joints). The other landmarks keep their own columns.

* **posed patches**: each patch is turned and sized to the standard frame of the view by the pose of
  the image's landmarks (:mod:`raoutcome.imaging.landmark_pose`), so the same healthy joint gives the
  same patch however the hand lies on the film and however much of it the hand fills;
* **a shift search**: a joint is scored on the best-fitting of its windows moved by up to ``SHIFT``
  samples each way (the patch is sampled with that margin), so a landmark a little off the joint
  centre does not look like damage, while an eroded or narrowed joint fits no shifted window either.

These and the patch width (``PATCH_HALF_WIDTH``) were chosen on simulated tuning cohorts (seeds 777-779,
otherwise the learning-check cohort's settings) by the held-out r with log erosions (plain PCA and
mean over all landmarks 0.78; + trimming, standardising, erosion sites 0.83; + the soft maximum 0.89;
+ posed patches 0.893 -> 0.899, 0.904 -> 0.914 and 0.876 -> 0.891 on the three), and then measured on
the learning-check cohort (``analyses/joint_anomaly_check.py``).

It needs no score of any kind, only the joint landmarks that the cohort's ``landmarks`` table
gives. So it is a damage measure for the "no human score" setting. It is fitted on reference
patients only (e.g. a model's training patients), and scores anyone. Its limits:

* it is a measure of atypical appearance, not of damage as such: a misplaced landmark, a ring or a
  fracture raises it too. It needs landmarks near the joint centres: with simulated annotation error
  (``[acquisition] landmark_sd``) its r with log SvdH on the learning-check cohort is 0.85 exact, 0.84 at
  0.005 of the image side (~1 mm) and 0.68 at 0.01 (0.72 and 0.47 before the shift search);
* it depends on the reference set: the trimming tolerates some damage in it, not a reference in
  which most joints are damaged.

:class:`JointAnomaly` is the estimator (``fit`` / ``score`` on patches); :func:`joint_patches` samples
one image; :func:`cohort_joint_anomaly` scores a cohort's images (:func:`cross_fitted_joint_anomaly`:
each patient by a PCA fitted without them); :func:`visit_anomaly` averages over a visit's views.
``raoutcome joint-anomaly`` writes either as CSV; :mod:`raoutcome.workflows.anomaly` validates the
score against a cohort's outcomes.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.ndimage import gaussian_filter, map_coordinates

from raoutcome import anatomy
from raoutcome.errors import InputError
from raoutcome.imaging.landmark_pose import landmark_pose
from raoutcome.imaging.transforms import needs_mirror

PATCH_HALF_WIDTH = 0.0625    # half-width of a patch, in units of the standard frame (a standard-framed image's side)
PATCH_GRID = 22              # samples per side of the window a joint is scored on
SHIFT = 2                    # the window may move this many samples each way (shift search)
PATCH_SIDE = PATCH_GRID + 2 * SHIFT  # samples per side of a sampled patch: the window and its margin
N_COMPONENTS = 5
TRIM = 0.6                   # refit the PCA on this best-reconstructed fraction of the reference
MIN_REFERENCE = 10           # reference patches a landmark needs before it can be scored


def joint_patches(pixels: np.ndarray, landmarks: Mapping[str, tuple[float, float]], mirror: bool = False,
                  half_width: float = PATCH_HALF_WIDTH, grid: int = PATCH_GRID,
                  pose: complex | None = None, margin: int = SHIFT) -> dict[str, np.ndarray]:
    """``{landmark: flattened (grid + 2 margin)^2 patch}`` centred on each landmark ``(x, y)`` (pixel
    coordinates of ``pixels``, column and row), in the canonical (left-side) orientation: ``mirror``
    flips right-side views left-right, as the model sees them.

    The patch spans ``2 * half_width`` units of the standard frame, turned and scaled by ``pose``
    (:func:`raoutcome.imaging.landmark_pose.landmark_pose`: pixels per unit, with the image's
    rotation), so the same joint gives the same patch whatever the hand's angle and size on the
    film. Without a ``pose`` the unit is the image's longer side and the patch is square to the
    image. ``margin`` more samples at the same spacing on each side leave room for the shift search
    of :class:`JointAnomaly`. Large images are smoothed first, so the samples do not alias."""
    pixels = np.asarray(pixels, dtype=np.float32)
    if pixels.ndim != 2:
        raise ValueError(f"joint_patches needs a 2-D image, got shape {pixels.shape}")
    unit = complex(max(pixels.shape)) if pose is None else complex(pose)
    step = 2.0 * half_width * abs(unit) / grid
    if step > 1.5:
        pixels = gaussian_filter(pixels, sigma=0.5 * step)
    side = grid + 2 * int(margin)
    offsets = (np.arange(side) - (side - 1) / 2.0) * (2.0 * half_width / grid)
    dy, dx = np.meshgrid(offsets, offsets, indexing="ij")
    moved = (dx + 1j * dy) * unit  # canonical offsets, in pixels
    if mirror:  # canonical -> stored orientation of a right-side view
        moved = -moved.conjugate()
    out = {}
    for name, (x, y) in landmarks.items():
        patch = map_coordinates(pixels, [moved.imag + float(y), moved.real + float(x)], order=1, mode="nearest")
        out[name] = patch.ravel()
    return out


def _standardise(patches: np.ndarray) -> np.ndarray:
    """Each row to zero mean and unit SD (a flat patch stays zero)."""
    centred = patches - patches.mean(1, keepdims=True)
    sd = centred.std(1, keepdims=True)
    return centred / np.where(sd > 1e-6, sd, 1.0)


def iter_shift_windows(patches: np.ndarray, shift: int) -> Iterator[np.ndarray]:
    """Each window ``[n, window^2]`` of the square patches ``[n, side^2]`` moved by up to ``shift`` samples
    each way (``window = side - 2 shift``), the centred one first; one at a time, so memory stays that of
    one window."""
    n, d = patches.shape
    side = int(round(np.sqrt(d)))
    window = side - 2 * shift
    if side * side != d or window < 1:
        raise ValueError(f"patches of {d} samples are not square patches with a margin of {shift}")
    sq = patches.reshape(n, side, side)
    moves = [(0, 0)] + [(a, b) for a in range(-shift, shift + 1) for b in range(-shift, shift + 1) if (a, b) != (0, 0)]
    for a, b in moves:
        yield sq[:, shift + a:shift + a + window, shift + b:shift + b + window].reshape(n, -1)


@dataclass
class _LandmarkModel:
    mean: np.ndarray
    components: np.ndarray  # [n_components, window^2]
    score_mean: float = 0.0  # the reference's raw scores at this landmark: mean and SD
    score_sd: float = 1.0
    shift: int = 0

    def window_score(self, windows: np.ndarray) -> np.ndarray:
        """Log mean squared residual of (finite) windows ``[n, window^2]``."""
        z = _standardise(windows) - self.mean
        resid = z - (z @ self.components.T) @ self.components
        return np.log(np.maximum((resid ** 2).mean(1), 1e-12))

    def raw_score(self, patches: np.ndarray) -> np.ndarray:
        """The lowest :meth:`window_score` over the shifted windows of (finite) patches ``[n, side^2]``:
        the residual of the joint where it fits best, within ``shift`` samples of its landmark."""
        best = None
        for window in iter_shift_windows(patches, self.shift):
            score = self.window_score(window)
            best = score if best is None else np.minimum(best, score)
        return best


class JointAnomaly:
    """Per-landmark PCA of z-normalised joint patches; ``score`` is the log mean squared residual in SDs
    of the reference's.

    ``fit(patches)`` / ``score(patches)`` take ``{landmark: [n, side^2]}`` arrays of square patches
    (rows of NaN for an image without that landmark; :func:`joint_patches`). The PCA is on the centred
    ``(side - 2 shift)^2`` window; a patch's residual is the lowest over the windows moved by up to
    ``shift`` samples each way (``shift=0``: no search). The PCA is refitted on the ``trim`` fraction of the reference it
    reconstructs best (``trim=None``: no refit; never fewer than ``min_reference`` patches). A
    landmark with fewer than ``min_reference`` reference patches is left out (``landmarks_`` lists
    those fitted).
    """

    def __init__(self, n_components: int = N_COMPONENTS, min_reference: int = MIN_REFERENCE,
                 trim: float | None = TRIM, shift: int = SHIFT):
        if n_components < 1:
            raise ValueError(f"n_components must be >= 1, got {n_components}")
        if trim is not None and not 0.0 < trim <= 1.0:
            raise ValueError(f"trim must be in (0, 1] or None, got {trim}")
        self.n_components = int(n_components)
        self.min_reference = max(int(min_reference), self.n_components + 1)
        self.trim = trim
        if shift < 0:
            raise ValueError(f"shift must be >= 0, got {shift}")
        self.shift = int(shift)
        self.models_: dict[str, _LandmarkModel] = {}

    @property
    def landmarks_(self) -> tuple[str, ...]:
        return tuple(self.models_)

    def _pca(self, arr: np.ndarray) -> _LandmarkModel:
        """PCA of the centred windows of the patches ``arr``."""
        from sklearn.decomposition import PCA

        windows = next(iter_shift_windows(arr, self.shift))  # the centred one
        pca = PCA(min(self.n_components, windows.shape[1]), random_state=0).fit(_standardise(windows))
        return _LandmarkModel(pca.mean_, pca.components_, shift=self.shift)

    def fit(self, patches: Mapping[str, np.ndarray]) -> "JointAnomaly":
        self.models_ = {}
        for name, arr in patches.items():
            arr = np.asarray(arr, dtype=np.float64)
            arr = arr[np.isfinite(arr).all(1)]
            if len(arr) < self.min_reference:
                continue
            model = self._pca(arr)
            raw = model.raw_score(arr)
            keep = max(self.min_reference, int(np.ceil((self.trim or 1.0) * len(arr))))
            if keep < len(arr):  # refit on the best-reconstructed patches: common damage stays atypical
                model = self._pca(arr[np.argsort(raw, kind="stable")[:keep]])
                raw = model.raw_score(arr)
            sd = float(raw.std())
            model.score_mean, model.score_sd = float(raw.mean()), sd if sd > 1e-12 else 1.0
            self.models_[name] = model
        if not self.models_:
            raise ValueError(f"no landmark has >= {self.min_reference} reference patches to fit")
        return self

    @classmethod
    def from_arrays(cls, landmarks: Iterable[str], mean: np.ndarray, components: np.ndarray, score_mean: np.ndarray,
                    score_sd: np.ndarray, fitted: np.ndarray, shift: int) -> "JointAnomaly":
        """A fitted model from per-landmark arrays (``mean [L, w]``, ``components [L, k, w]``, ``score_mean``,
        ``score_sd``, ``fitted [L]``), as a model checkpoint stores them
        (:class:`raoutcome.models.anomaly_readout.JointAnomalyScorer`)."""
        model = cls(n_components=components.shape[1], shift=shift)
        model.models_ = {name: _LandmarkModel(np.asarray(mean[i], np.float64), np.asarray(components[i], np.float64),
                                              float(score_mean[i]), float(score_sd[i]), shift)
                         for i, name in enumerate(landmarks) if fitted[i]}
        return model

    def score(self, patches: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """``{landmark: [n]}`` log mean squared reconstruction residual, in SDs of the reference's scores
        from their mean (NaN where the patch is missing)."""
        if not self.models_:
            raise RuntimeError("JointAnomaly is not fitted: call fit() first")
        out = {}
        for name, model in self.models_.items():
            if name not in patches:
                continue
            arr = np.asarray(patches[name], dtype=np.float64)
            ok = np.isfinite(arr).all(1)
            s = (model.raw_score(np.where(ok[:, None], arr, 0.0)) - model.score_mean) / model.score_sd
            out[name] = np.where(ok, s, np.nan)
        return out


def erosion_site_landmarks(view: str, landmarks: Iterable[str]) -> list[str]:
    """The ``landmarks`` that sit on an SvdH erosion site of ``view`` (``anatomy.LANDMARK_SITE`` maps
    other names, e.g. the thumb's "MP" to "MCP1")."""
    sites = set(anatomy.sites_for(view, "erosion"))
    return [n for n in landmarks if anatomy.LANDMARK_SITE.get(n, n) in sites]


def soft_maximum(scores: np.ndarray) -> np.ndarray:
    """Row-wise log mean exp over the finite entries of ``scores [n, k]`` (NaN for a row with none):
    between the mean and the maximum, so a few high scores count without one deciding alone."""
    scores = np.asarray(scores, dtype=np.float64)
    ok = np.isfinite(scores)
    n = ok.sum(1)
    top = np.where(n > 0, np.max(np.where(ok, scores, -np.inf), axis=1, initial=-np.inf), 0.0)
    total = np.where(ok, np.exp(np.where(ok, scores, 0.0) - top[:, None]), 0.0).sum(1)
    with np.errstate(divide="ignore"):
        return np.where(n > 0, top + np.log(total / np.maximum(n, 1)), np.nan)


def image_anomaly(images: pd.DataFrame, scores: pd.DataFrame) -> pd.Series:
    """Per image (rows of ``images`` with a ``view``; ``scores`` one column per landmark, same rows):
    the :func:`soft_maximum` of its landmark scores at the view's SvdH erosion sites (NaN when it has
    none)."""
    out = pd.Series(np.nan, index=scores.index, dtype=float)
    for view, rows in images.groupby("view").groups.items():
        cols = erosion_site_landmarks(str(view), scores.columns)
        if cols:
            out.loc[rows] = soft_maximum(scores.loc[rows, cols].to_numpy(float))
    return out


def cohort_patches(cohort, paths: Iterable[str] | None = None, progress: bool = True,
                   half_width: float = PATCH_HALF_WIDTH, grid: int = PATCH_GRID
                   ) -> tuple[pd.DataFrame, dict[str, np.ndarray]]:
    """(the cohort's images with landmarks, as rows of ``images``; ``{landmark: [n_images, (grid + 2 SHIFT)^2]}``
    patches, NaN where an image lacks the landmark). Raises :class:`~raoutcome.errors.InputError`
    without a landmarks table."""
    from raoutcome.imaging.io import read_image

    if cohort.landmarks is None or not len(cohort.landmarks):
        raise InputError(f"{cohort.root}: the joint anomaly score needs a landmarks table (landmarks.csv)")
    from raoutcome.imaging.joint_targets import points_by_path

    marks = points_by_path(cohort.landmarks)
    images = cohort.images[cohort.images["path"].isin(marks)]
    if paths is not None:
        images = images[images["path"].isin(set(paths))]
    images = images.reset_index(drop=True)
    names = sorted({n for p in images["path"] for n in marks[p]})
    side = grid + 2 * SHIFT
    out = {n: np.full((len(images), side * side), np.nan, dtype=np.float32) for n in names}
    rows = images.itertuples(index=True)
    if progress:
        from raoutcome.progress import tqdm

        rows = tqdm(rows, total=len(images), desc="joint patches", unit="image")
    for row in rows:
        pixels = read_image(cohort.image_path(row.path)).pixels
        mirror = needs_mirror(row.view)
        pose = landmark_pose(marks[row.path], row.view, mirror)
        for name, patch in joint_patches(pixels, marks[row.path], mirror, half_width, grid, pose).items():
            out[name][row.Index] = patch
    return images, out


def cohort_joint_anomaly(cohort, reference_ids: Iterable[str] | None = None, n_components: int = N_COMPONENTS,
                         progress: bool = True) -> pd.DataFrame:
    """One row per image with landmarks: ``patient_id, visit_id, view, path``, ``anomaly`` (soft maximum
    over its landmarks at erosion sites, :func:`image_anomaly`) and ``anomaly_<landmark>``. The PCA is fitted on ``reference_ids``' images (default:
    every patient); score only patients outside them when the score is to be validated."""
    images, patches = cohort_patches(cohort, progress=progress)
    ref = np.ones(len(images), bool) if reference_ids is None else \
        images["patient_id"].isin({str(p) for p in reference_ids}).to_numpy()
    if not ref.any():
        raise InputError("none of the reference patients has an image with landmarks")
    model = _fit(cohort, JointAnomaly(n_components), {n: a[ref] for n, a in patches.items()})
    scores = pd.DataFrame(model.score(patches))
    out = pd.concat([images[["patient_id", "visit_id", "view", "path"]], scores.add_prefix("anomaly_")], axis=1)
    out["anomaly"] = image_anomaly(images, scores)
    return out


def cross_fitted_joint_anomaly(cohort, folds: int = 3, seed: int = 0, n_components: int = N_COMPONENTS,
                               strata: Mapping[str, int] | None = None, progress: bool = True) -> pd.DataFrame:
    """As :func:`cohort_joint_anomaly`, but each patient is scored by a PCA fitted on the other folds'
    patients (patient-grouped K-fold, :func:`raoutcome.cohort.splits.kfold`, stratified on ``strata``,
    a label per patient id, when given), with a ``fold`` column: scores to validate, or to use as a
    covariate beside outcomes."""
    from raoutcome.cohort.splits import kfold

    images, patches = cohort_patches(cohort, progress=progress)
    ids = cohort.patient_ids
    status = [int((strata or {}).get(p, 0)) for p in ids]
    parts = []
    for f, (train_ids, test_ids) in enumerate(kfold(ids, status, folds, seed)):
        ref = images["patient_id"].isin(set(train_ids)).to_numpy()
        test = images["patient_id"].isin(set(test_ids)).to_numpy()
        if not ref.any() or not test.any():
            continue
        model = _fit(cohort, JointAnomaly(n_components), {n: a[ref] for n, a in patches.items()})
        scores = pd.DataFrame(model.score({n: a[test] for n, a in patches.items()}))
        rows = images.loc[test, ["patient_id", "visit_id", "view", "path"]].reset_index(drop=True)
        part = pd.concat([rows, scores.add_prefix("anomaly_")], axis=1)
        part["anomaly"] = image_anomaly(rows, scores)
        part["fold"] = f
        parts.append(part)
    if not parts:
        raise InputError(f"{cohort.root}: no fold has both reference and held-out images with landmarks")
    return pd.concat(parts, ignore_index=True)


def _fit(cohort, model: JointAnomaly, patches: Mapping[str, np.ndarray]) -> JointAnomaly:
    try:
        return model.fit(patches)
    except ValueError as err:  # too few landmarked reference images: the cohort's, not the caller's, fault
        raise InputError(f"{cohort.root}: {err}") from err


def visit_anomaly(image_scores: pd.DataFrame) -> pd.DataFrame:
    """The mean ``anomaly`` over the views of each visit: ``patient_id, visit_id, anomaly, n_views``."""
    g = image_scores.dropna(subset=["anomaly"]).groupby(["patient_id", "visit_id"], sort=True)["anomaly"]
    return g.agg(anomaly="mean", n_views="size").reset_index()


__all__ = ["JointAnomaly", "joint_patches", "cohort_patches", "cohort_joint_anomaly", "cross_fitted_joint_anomaly",
           "erosion_site_landmarks", "image_anomaly", "soft_maximum", "visit_anomaly",
           "iter_shift_windows", "PATCH_HALF_WIDTH", "PATCH_GRID", "PATCH_SIDE", "SHIFT", "N_COMPONENTS", "TRIM"]
