"""Closed-form linear readouts for the HAQ and pain heads, fitted after training.

Why: a head trained by SGD inside the multitask loss, from a few hundred noisy visit labels,
reads the outcome off a narrow embedding and stays well below what the encoder knows. On the
simulated cohort a ridge regression on the frozen *pooled image features* recovers
periarticular bone density with R^2 ~0.8 where the trained embedding holds ~0.3, and it
predicts HAQ for held-out patients better than the trained head (R^2 ~0.5 vs ~0.3). So after
training each model refits these heads as

    y_hat = clip(w . x + b, outcome range),   x = [embedding, log counts, mean pooled image features]

by ridge regression on the model's own training patients (never its test patients), with the
penalty chosen by patient-grouped K-fold cross-validation (scikit-learn ``GridSearchCV`` over
``Pipeline(StandardScaler, Ridge)``; visits of one patient never straddle a split). The
standardisation is folded into ``w, b``, so the readout is one ``nn.Linear`` in the model.

The fitting (:func:`fit_ridge_readout`) is plain NumPy/scikit-learn; :func:`fit_readouts`
collects the features from a model and writes the fitted weights into it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import DataLoader

from raoutcome.imaging.dataset import batch_to
from raoutcome.models.multitask import LongitudinalOutcomeModel

ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))  # ridge penalties tried (on standardised features)
MIN_PATIENTS = 4  # fewer labelled patients than this: keep the trained head


@dataclass(frozen=True)
class RidgeReadout:
    """A fitted readout: ``y = coef @ x + intercept`` on raw features."""

    coef: np.ndarray
    intercept: float
    alpha: float
    cv_r2: float  # grouped cross-validated R^2 at the chosen penalty (on the training patients)
    n_visits: int
    n_patients: int


def fit_ridge_readout(x: np.ndarray, y: np.ndarray, groups: np.ndarray, folds: int = 5,
                      alphas: tuple[float, ...] = ALPHAS) -> RidgeReadout:
    """Ridge of ``y`` on ``x`` (rows with a finite ``y``); penalty by ``groups``-wise K-fold CV."""
    from sklearn.linear_model import Ridge
    from sklearn.model_selection import GridSearchCV, GroupKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    ok = np.isfinite(y)
    x, y, groups = np.asarray(x, np.float64)[ok], np.asarray(y, np.float64)[ok], np.asarray(groups)[ok]
    n_groups = len(np.unique(groups))
    if n_groups < MIN_PATIENTS:
        raise ValueError(f"a readout needs labelled visits of >= {MIN_PATIENTS} patients, got {n_groups}")
    search = GridSearchCV(make_pipeline(StandardScaler(), Ridge()), {"ridge__alpha": list(alphas)},
                          cv=GroupKFold(min(folds, n_groups)), scoring="r2")
    search.fit(x, y, groups=groups)
    scaler, ridge = search.best_estimator_.named_steps.values()
    scale = np.where(scaler.scale_ > 0, scaler.scale_, 1.0)
    coef = ridge.coef_ / scale
    intercept = float(ridge.intercept_ - coef @ scaler.mean_)
    return RidgeReadout(coef=coef, intercept=intercept, alpha=float(search.best_params_["ridge__alpha"]),
                        cv_r2=float(search.best_score_), n_visits=int(len(y)), n_patients=n_groups)


@torch.inference_mode()
def readout_data(model: LongitudinalOutcomeModel, loader: DataLoader, device: torch.device
                 ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(features ``[visits, readout_dim]``, targets per head ``{head: [visits]}`` (NaN = missing),
    patient index ``[visits]``) over every visit with an image in ``loader``."""
    model.eval()
    xs, ys, gs = [], {h: [] for h in model.spec.readouts}, []
    for batch in loader:
        out = model.forward_batch(batch_to(batch, device), return_readout_features=True)
        keep = (batch["visit_mask"] & _has_image(batch)).numpy()
        xs.append(out["readout_features"].float().cpu().numpy()[keep])
        for h in ys:
            ys[h].append(batch[f"target_{h}"].numpy()[keep])
        gs.append(np.broadcast_to(batch["index"].numpy()[:, None], keep.shape)[keep])
    dim = model.readout_dim
    return (np.concatenate(xs) if xs else np.zeros((0, dim)),
            {h: np.concatenate(v) if v else np.zeros(0) for h, v in ys.items()},
            np.concatenate(gs) if gs else np.zeros(0, int))


def _has_image(batch: dict) -> torch.Tensor:
    has = torch.zeros_like(batch["visit_mask"])
    has[batch["img_b"], batch["img_t"]] = True
    return has


def fit_readouts(model: LongitudinalOutcomeModel, loader: DataLoader, device: torch.device,
                 folds: int = 5) -> dict[str, RidgeReadout | str]:
    """Fit every readout of ``model`` (``spec.readouts``) on ``loader``'s patients, in place.

    Returns the fit per head, or the reason it could not be fitted (too few labelled
    patients): that head's readout weights are left untouched and the caller should drop it.
    """
    x, ys, groups = readout_data(model, loader, device)
    fits: dict[str, RidgeReadout | str] = {}
    for head, y in ys.items():
        try:
            fitted = fit_ridge_readout(x, y, groups, folds)
        except ValueError as err:
            fits[head] = str(err)
            continue
        layer = model.readouts[head]
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(fitted.coef, dtype=layer.weight.dtype)[None])
            layer.bias.fill_(fitted.intercept)
        fits[head] = fitted
    return fits


__all__ = ["ALPHAS", "MIN_PATIENTS", "RidgeReadout", "fit_ridge_readout", "fit_readouts", "readout_data"]
