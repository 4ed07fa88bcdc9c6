"""Fitting the closed-form readouts (the post-fit step, :mod:`raoutcome.models.readouts`) after training.

Why: a head trained by SGD inside the multitask loss, from a few hundred noisy visit labels, reads the
outcome off a narrow embedding and stays below what the encoder knows; and each fold's trained risk head
has its own scale, so pooled out-of-fold risks rank patients worse than each fold does (the probes that
showed both: ``docs/registry.md``). So after training each model refits its ``ridge`` outcomes as

    y_hat = clip(w . x + b, outcome range),   x = [embedding, log counts, mean pooled image features]

by ridge regression on the model's own training patients (never its test patients), with the penalty
chosen by patient-grouped K-fold cross-validation (scikit-learn ``GridSearchCV`` over
``Pipeline(StandardScaler, Ridge)``; visits of one patient never straddle a split); the standardisation is
folded into ``w, b``. Its ``cox`` outcome (risk) is refitted as a Cox proportional-hazards model
(lifelines ``CoxPHFitter``, ridge penalty ``cox_penalizer``) of the time from the first visit on the first
visit's own outputs (``model.risk_inputs``), which keep one scale from fold to fold. The first visit is
used whatever ``survival.risk_visit`` says: a later visit's outputs against the time from the first visit
would credit non-events with the damage of their longer follow-up.

A model with ``anomaly_landmarks`` first gets its joint anomaly PCA fitted on the same patients
(:func:`fit_anomaly_readout`); the visit's anomaly then enters the ridge features and the risk inputs.
``risk_inputs`` restricts the Cox model to some of the inputs (the others get 0). The fitting
(:func:`fit_ridge_readout`, :func:`fit_cox_readout`) is plain NumPy, scikit-learn and lifelines;
:func:`fit_readouts` collects the features from a model and writes the fitted weights into it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch.utils.data import DataLoader

from raoutcome.imaging.dataset import batch_to
from raoutcome.models.multitask import LongitudinalOutcomeModel
from raoutcome.outcomes import outcome

if TYPE_CHECKING:
    from raoutcome.imaging.joint_anomaly import JointAnomaly

ALPHAS = tuple(float(a) for a in np.logspace(-1, 5, 13))  # ridge penalties tried (on standardised features)
MIN_PATIENTS = 4  # fewer labelled patients than this: keep the trained head
MIN_EVENTS_PER_INPUT = 3  # fewer observed events than 3 per risk input: keep the trained risk head
COX_PENALIZER = 0.1


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


@dataclass(frozen=True)
class CoxReadout:
    """A fitted risk readout: log relative hazard ``coef @ x`` (lifelines ``CoxPHFitter``)."""

    coef: np.ndarray
    penalizer: float
    concordance: float  # Harrell's C on the patients it was fitted on
    n_patients: int
    n_events: int
    summary: "object"  # lifelines' summary table (coef, se, CI, p per input)


def fit_cox_readout(x: np.ndarray, time: np.ndarray, event: np.ndarray, names: tuple[str, ...],
                    penalizer: float = COX_PENALIZER) -> CoxReadout:
    """Cox model of ``(time, event)`` on the columns of ``x`` (rows with a finite time and event)."""
    import pandas as pd
    from lifelines import CoxPHFitter

    ok = np.isfinite(time) & np.isfinite(event) & np.isfinite(x).all(1)
    n_events = int(event[ok].sum())
    need = MIN_EVENTS_PER_INPUT * max(1, len(names))
    if n_events < need:  # too few events for the inputs: the fit separates and its coefficients explode
        raise ValueError(f"a risk readout on {len(names)} inputs needs >= {need} observed events, got {n_events}")
    frame = pd.DataFrame(x[ok], columns=list(names)).assign(_time=time[ok], _event=event[ok].astype(int))
    keep = [c for c in names if frame[c].std() > 0]  # a constant input has no coefficient
    cph = CoxPHFitter(penalizer=penalizer).fit(frame[keep + ["_time", "_event"]], "_time", "_event")
    coef = np.array([float(cph.params_.get(c, 0.0)) for c in names])
    return CoxReadout(coef=coef, penalizer=float(penalizer), concordance=float(cph.concordance_index_),
                      n_patients=int(ok.sum()), n_events=n_events, summary=cph.summary)


@torch.inference_mode()
def risk_data(model: LongitudinalOutcomeModel, loader: DataLoader, device: torch.device
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(first-visit risk inputs ``[patients, len(risk_inputs)]``, event time, event observed) of the
    patients in ``loader`` whose first visit has an image."""
    model.eval()
    xs, ts, es = [], [], []
    for batch in loader:
        out = model.forward_batch(batch_to(batch, device), return_readout_features=True)
        keep = _has_image(batch)[:, 0].numpy()
        xs.append(out["risk_features"][:, 0].float().cpu().numpy()[keep])
        ts.append(batch["event_time"].numpy()[keep])
        es.append(batch["event_observed"].numpy()[keep])
    k = len(model.risk_inputs)
    return (np.concatenate(xs) if xs else np.zeros((0, k)), np.concatenate(ts) if ts else np.zeros(0),
            np.concatenate(es) if es else np.zeros(0))


@torch.inference_mode()
def readout_data(model: LongitudinalOutcomeModel, loader: DataLoader, device: torch.device
                 ) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray]:
    """(features ``[visits, readout_dim]``, targets per head ``{head: [visits]}`` (NaN = missing),
    patient index ``[visits]``) over every visit with an image in ``loader``."""
    model.eval()
    xs, ys, gs = [], {h: [] for h in model.spec.readouts if outcome(h).readout == "ridge"}, []
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


def fit_anomaly_readout(model: LongitudinalOutcomeModel, loader: DataLoader) -> "JointAnomaly":
    """Fit the model's joint anomaly PCA (:class:`~raoutcome.imaging.joint_anomaly.JointAnomaly`) on the
    joint patches of every image in ``loader`` and load it into ``model.joint_anomaly``."""
    from raoutcome.imaging.joint_anomaly import JointAnomaly

    scorer = model.joint_anomaly
    chunks = [batch["joint_patches"].numpy() for batch in loader if "joint_patches" in batch]
    if not chunks:
        raise ValueError("the joint anomaly readout needs joint patches: build the dataset with patch_landmarks")
    patches = np.concatenate(chunks)
    fitted = JointAnomaly(scorer.components.shape[1]).fit({n: patches[:, i] for i, n in enumerate(scorer.landmarks)})
    scorer.load_fitted(fitted)
    return fitted


def _has_image(batch: dict) -> torch.Tensor:
    has = torch.zeros_like(batch["visit_mask"])
    has[batch["img_b"], batch["img_t"]] = True
    return has


def fit_readouts(model: LongitudinalOutcomeModel, loader: DataLoader, device: torch.device,
                 folds: int = 5, cox_penalizer: float = COX_PENALIZER,
                 risk_inputs: tuple[str, ...] | None = None) -> dict[str, RidgeReadout | CoxReadout | str]:
    """Fit every readout of ``model`` (``spec.readouts``) on ``loader``'s patients, in place.

    The joint anomaly PCA first (when the model reads it), then HAQ and pain (the risk readout
    reads their refitted outputs), then risk on ``risk_inputs`` (default: all of
    ``model.risk_inputs``). Returns the fit per head, or the reason it could not be fitted (too few
    labelled patients, or fewer than ``MIN_EVENTS_PER_INPUT`` events per risk input): that
    head's readout weights are left untouched and the caller should drop it.
    """
    if model.joint_anomaly is not None:
        fit_anomaly_readout(model, loader)
    x, ys, groups = readout_data(model, loader, device)
    fits: dict[str, RidgeReadout | CoxReadout | str] = {}
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
    for name in [h for h in model.readouts if outcome(h).readout == "cox"]:
        unfitted = [h for h, f in fits.items() if isinstance(f, str)]
        if unfitted:  # the risk readout would read a head that stays the trained one
            fits[name] = f"the readouts of {unfitted} could not be fitted"
            return fits
        names = tuple(risk_inputs) if risk_inputs else model.risk_inputs
        unknown = [n for n in names if n not in model.risk_inputs]
        if unknown:
            raise ValueError(f"risk inputs {unknown} are not among this model's: {', '.join(model.risk_inputs)}")
        rx, time, event = risk_data(model, loader, device)
        cols = [model.risk_inputs.index(n) for n in names]
        try:
            cox = fit_cox_readout(rx[:, cols], time, event, names, cox_penalizer)
        except ValueError as err:
            fits[name] = str(err)
            return fits
        coef = np.zeros(len(model.risk_inputs))
        coef[cols] = cox.coef
        layer = model.readouts[name]
        with torch.no_grad():
            layer.weight.copy_(torch.as_tensor(coef, dtype=layer.weight.dtype)[None])
            layer.bias.zero_()  # the centre is the risk head's (set after the fit)
        fits[name] = cox
    return fits


__all__ = ["ALPHAS", "COX_PENALIZER", "MIN_EVENTS_PER_INPUT", "MIN_PATIENTS", "CoxReadout", "RidgeReadout",
           "fit_anomaly_readout", "fit_cox_readout", "fit_readouts", "fit_ridge_readout", "readout_data", "risk_data"]
