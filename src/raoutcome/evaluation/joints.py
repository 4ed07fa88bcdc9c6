"""Per-joint SvdH predictions: visit totals with their uncertainty, per-joint agreement, RA2-DREAM subchallenges.

A per-joint prediction (one row per ``patient_id, visit_id, joint, kind``; columns ``score`` the expected
score, ``sd`` its SD, ``p0 .. pK`` the class probabilities) sums to visit subscores and totals:

    E[JSN] = sum_j E_j,   Var[JSN] = sum_j SD_j^2

(the SD of a sum of independent site readings; errors shared between sites of one film make it a lower
bound). A joint missing from a visit's prediction (its view was not filmed) takes the same site of the
other side at that visit when there is one (RA is mostly symmetric), flagged in ``n_imputed``; other missing
joints are left out and counted in ``n_missing``.

Agreement of the predicted class (the most probable, ``argmax p``) with a reading: exact and within one
grade (Hirano et al. 2019, Mod Rheumatol 29:1, report 49-65 % exact and 71-74 % within one for JSN and
erosion on real hands: for orientation only, their readings are not these). Joints whose reading is 0
dominate a cohort with little damage, so the agreement on damaged joints (reading >= 1) is given beside.

RA2-DREAM (Sun et al. 2022, seeds/000): subchallenge 1 scores the overall total per patient set,
subchallenges 2 and 3 the JSN and erosion of every joint, each by the weighted RMSE of
:func:`raoutcome.evaluation.dream.dream_weighted_rmse` (weights from the bin of the *overall* true score
of the patient set) and subchallenge 1 also by the weighted absolute error.
"""
from __future__ import annotations

__all__ = ["agreement", "dream_subchallenges", "joint_agreement", "predicted_class", "severity_from_joints",
           "total_distribution", "visit_totals"]

import numpy as np
import pandas as pd

from raoutcome.evaluation.dream import dream_weighted_mae, dream_weighted_rmse
from raoutcome.outcomes import Outcome, site_outcome

_KEYS = ["patient_id", "visit_id"]


def _prob_columns(frame: pd.DataFrame) -> list[str]:
    cols = [c for c in frame.columns if c.startswith("p") and c[1:].isdigit()]
    return sorted(cols, key=lambda c: int(c[1:]))


def predicted_class(frame: pd.DataFrame) -> np.ndarray:
    """The most probable class of each row (``argmax`` over ``p0 .. pK``; NaN columns ignored); without
    probability columns the rounded ``score``."""
    cols = _prob_columns(frame)
    if not cols:
        return np.rint(frame["score"].to_numpy(float))
    p = frame[cols].to_numpy(float)
    return np.nanargmax(np.where(np.isfinite(p), p, -1.0), axis=1).astype(float)


def _other_side(joint: str) -> str | None:
    view, _, site = joint.partition(":")
    if view.endswith("_left"):
        return f"{view[:-5]}_right:{site}"
    if view.endswith("_right"):
        return f"{view[:-6]}_left:{site}"
    return None


def _site_spec() -> Outcome:
    """The outcome read site by site (SvdH; :func:`raoutcome.outcomes.site_outcome`)."""
    spec = site_outcome()
    if spec is None:
        raise ValueError("no registered outcome is read site by site (no part with a site_kind)")
    return spec


def visit_totals(frame: pd.DataFrame, expected_joints: dict[str, list[str]] | None = None) -> pd.DataFrame:
    """Visit subscores and total from per-joint predictions: ``patient_id, visit_id``, then for each output of the
    site-read outcome (:func:`raoutcome.outcomes.site_outcome`; SvdH: ``jsn`` and ``erosion``, the sums over the
    joints of their ``site_kind``, and ``svdh``, their sum) the output and ``<output>_sd``; ``n_joints,
    n_imputed, n_missing``.

    ``expected_joints``: per kind, every joint a full reading has (e.g. the cohort's joint names); a visit
    missing one takes the contralateral joint of that visit (:func:`_other_side`) or counts it missing.
    """
    pid = frame["patient_id"].astype(str).to_numpy()
    vid = frame["visit_id"].astype(str).to_numpy()
    # visits numbered in sorted (patient, visit) order, from each column's sorted codes (as factorizing the pairs
    # with sort=True, ~10x faster)
    pcode, puniq = pd.factorize(pid, sort=True)
    vcode, vuniq = pd.factorize(vid, sort=True)
    pairs, vcode = np.unique(pcode.astype(np.int64) * max(len(vuniq), 1) + vcode, return_inverse=True)
    vcode = vcode.reshape(-1)
    n_visits = len(pairs)
    kind = frame["kind"].astype(str).to_numpy()
    joint = frame["joint"].astype(str).to_numpy()
    score = frame["score"].to_numpy(float)
    var = frame["sd"].to_numpy(float) ** 2
    n_joints = np.bincount(vcode, minlength=n_visits).astype(int)
    n_imputed = np.zeros(n_visits, int)
    n_missing = np.zeros(n_visits, int)
    sums: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
    for k in pd.unique(kind):  # every kind read: sums of score and variance, rows (NaN adds 0, as pandas' sum)
        rows = kind == k
        sums[k] = (np.bincount(vcode[rows], np.nan_to_num(score[rows]), n_visits),
                   np.bincount(vcode[rows], np.nan_to_num(var[rows]), n_visits),
                   np.bincount(vcode[rows], minlength=n_visits).astype(float))
    for k, joints in (expected_joints or {}).items():
        joints = list(joints)
        if not joints:
            continue
        index = {j: i for i, j in enumerate(joints)}
        rows = np.flatnonzero(kind == k)
        jcode = np.array([index.get(j, -1) for j in joint[rows]], dtype=int)
        rows, jcode = rows[jcode >= 0], jcode[jcode >= 0]
        present = np.zeros((n_visits, len(joints)), bool)
        s_grid = np.zeros((n_visits, len(joints)))
        v_grid = np.zeros((n_visits, len(joints)))
        present[vcode[rows], jcode] = True
        s_grid[vcode[rows], jcode] = np.nan_to_num(score[rows])
        v_grid[vcode[rows], jcode] = np.nan_to_num(var[rows])
        other = np.array([index.get(_other_side(j) or "", -1) for j in joints], dtype=int)
        has_other = other >= 0
        donor = np.zeros_like(present)
        donor[:, has_other] = present[:, other[has_other]]
        imputed = ~present & donor  # a missing joint takes the same site of the other side at that visit
        missing = ~present & ~donor
        n_imputed += imputed.sum(1)
        n_missing += missing.sum(1)
        n_joints += imputed.sum(1)
        add_s = np.where(imputed, s_grid[:, np.where(has_other, other, 0)], 0.0).sum(1)
        add_v = np.where(imputed, v_grid[:, np.where(has_other, other, 0)], 0.0).sum(1)
        base = sums.get(k, (np.zeros(n_visits), np.zeros(n_visits), np.zeros(n_visits)))
        sums[k] = (base[0] + add_s, base[1] + add_v, base[2] + imputed.sum(1))
    out = pd.DataFrame({"patient_id": puniq[pairs // max(len(vuniq), 1)], "visit_id": vuniq[pairs % max(len(vuniq), 1)]})
    spec = _site_spec()
    parts = spec.site_parts
    for part in parts:
        tot, v, n = sums.get(part.site_kind, (np.zeros(n_visits), np.zeros(n_visits), np.zeros(n_visits)))
        out[part.name] = np.where(n > 0, tot, np.nan)
        out[f"{part.name}_sd"] = np.where(n > 0, np.sqrt(v), np.nan)
    out[spec.name] = sum((out[p.name] for p in parts[1:]), out[parts[0].name])
    out[f"{spec.name}_sd"] = np.sqrt(sum((out[f"{p.name}_sd"] ** 2 for p in parts[1:]), out[f"{parts[0].name}_sd"] ** 2))
    out["n_joints"] = n_joints
    out["n_imputed"] = n_imputed
    out["n_missing"] = n_missing
    return out


def agreement(pred_class: np.ndarray, truth: np.ndarray) -> dict:
    """Exact and within-one agreement of classes (finite truth only), overall and on damaged joints (truth >= 1)."""
    pred_class, truth = np.asarray(pred_class, float), np.asarray(truth, float)
    ok = np.isfinite(truth) & np.isfinite(pred_class)
    d = np.abs(pred_class[ok] - truth[ok])
    dam = truth[ok] >= 1
    return {"n": int(ok.sum()), "exact": float((d == 0).mean()) if ok.any() else float("nan"),
            "within_1": float((d <= 1).mean()) if ok.any() else float("nan"),
            "n_damaged": int(dam.sum()),
            "exact_damaged": float((d[dam] == 0).mean()) if dam.any() else float("nan"),
            "within_1_damaged": float((d[dam] <= 1).mean()) if dam.any() else float("nan")}


def joint_agreement(pred: pd.DataFrame, truth: pd.DataFrame) -> dict[str, dict]:
    """:func:`agreement` per kind of the predicted class (:func:`predicted_class`) against ``truth`` (a joints table)."""
    t = truth.assign(patient_id=truth["patient_id"].astype(str), visit_id=truth["visit_id"].astype(str))
    m = pred.assign(_cls=predicted_class(pred)).merge(
        t[_KEYS + ["joint", "kind", "score"]].rename(columns={"score": "_truth"}), on=_KEYS + ["joint", "kind"],
        how="inner")
    return {kind: agreement(g["_cls"].to_numpy(), pd.to_numeric(g["_truth"], errors="coerce").to_numpy())
            for kind, g in m.groupby("kind")}


def dream_subchallenges(pred: pd.DataFrame, truth: pd.DataFrame, totals: pd.DataFrame | None = None) -> dict:
    """The three RA2-DREAM scores of per-joint predictions against a joints table of readings.

    Subchallenge 1: weighted RMSE (and weighted absolute error) of the visit total (``totals``, as from
    :func:`visit_totals`, default computed from ``pred``) against the sum of the readings of visits read in
    full. Subchallenges 2 / 3: weighted RMSE of every JSN / erosion joint, weighted by the visit's overall
    true total. Lower is better.
    """
    t = truth.assign(patient_id=truth["patient_id"].astype(str), visit_id=truth["visit_id"].astype(str),
                     score=pd.to_numeric(truth["score"], errors="coerce"))
    overall = t.groupby(_KEYS)["score"].agg(["sum", "count", "size"])
    overall = overall[overall["count"] == overall["size"]]["sum"].rename("overall")
    totals = visit_totals(pred) if totals is None else totals
    sc1 = totals.merge(overall.reset_index(), on=_KEYS, how="inner")
    total = _site_spec().name
    m = pred.merge(t[_KEYS + ["joint", "kind", "score"]].rename(columns={"score": "truth"}),
                   on=_KEYS + ["joint", "kind"], how="inner").merge(overall.reset_index(), on=_KEYS, how="inner")
    out = {"sc1_overall": {"weighted_rmse": dream_weighted_rmse(sc1["overall"], sc1[total]),
                           "weighted_mae": dream_weighted_mae(sc1["overall"], sc1[total]), "n": int(len(sc1))}}
    for name, kind in (("sc2_jsn", "jsn"), ("sc3_erosion", "erosion")):  # the challenge's subchallenges 2, 3
        g = m[(m["kind"] == kind) & m["truth"].notna()]
        out[name] = {"weighted_rmse": dream_weighted_rmse(g["truth"], g["score"], weight_by=g["overall"]),
                     "n": int(len(g))}
    return out


def total_distribution(frame: pd.DataFrame) -> dict[tuple[str, str], np.ndarray]:
    """Per visit, the distribution of its SvdH total: the convolution of its joints' class distributions
    (``p0 .. pK`` of every joint and kind; independent sites). Returns ``{(patient_id, visit_id): P[total = t]}``."""
    cols = _prob_columns(frame)
    if not cols:
        raise ValueError("per-joint predictions hold no class probabilities (p0 .. pK)")
    out = {}
    p_all = frame[cols].to_numpy(float)
    for key, rows in frame.groupby(_KEYS).indices.items():
        dist = np.ones(1)
        for p in p_all[rows]:
            p = p[np.isfinite(p)]
            dist = np.convolve(dist, p / p.sum())
        out[(str(key[0]), str(key[1]))] = dist
    return out


def severity_from_joints(frame: pd.DataFrame, truth: pd.DataFrame, cutoffs=None) -> dict:
    """Severity classes (seeds/002; default cut-offs the RA2-DREAM bins,
    :data:`raoutcome.evaluation.classification.DEFAULT_SEVERITY_CUTOFFS`) read off the ordinal per-joint heads:
    the class of highest probability under :func:`total_distribution`, against the class of the observed total
    (``truth``: ``patient_id, visit_id`` and the site-read outcome's column, ``svdh_total``). Returns accuracy,
    class MAE and the PCC of the classes."""
    from raoutcome.evaluation.classification import DEFAULT_SEVERITY_CUTOFFS, severity_class

    edges = np.asarray(DEFAULT_SEVERITY_CUTOFFS if cutoffs is None else cutoffs, float)
    dists = total_distribution(frame)
    t = truth.assign(patient_id=truth["patient_id"].astype(str), visit_id=truth["visit_id"].astype(str))
    column = _site_spec().column
    t = t.dropna(subset=[column])
    pred, true = [], []
    for pid, vid, y in zip(t["patient_id"], t["visit_id"], t[column]):
        d = dists.get((pid, vid))
        if d is None:
            continue
        classes = severity_class(np.arange(len(d)), edges)
        pred.append(int(np.argmax(np.bincount(classes, weights=d, minlength=len(edges) + 1))))
        true.append(int(severity_class([y], edges)[0]))
    pred, true = np.asarray(pred), np.asarray(true)
    pcc = float(np.corrcoef(true, pred)[0, 1]) if len(true) > 1 and np.ptp(true) and np.ptp(pred) else float("nan")
    return {"n": int(len(true)), "accuracy": float(np.mean(pred == true)) if len(true) else float("nan"),
            "class_mae": float(np.mean(np.abs(pred - true))) if len(true) else float("nan"), "class_pcc": pcc}
