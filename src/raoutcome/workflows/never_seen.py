"""Accuracy on patients a model never saw: out-of-fold predictions pooled with an independent test cohort.

A cross-fitted run predicts each patient of its own cohort with the fold model that never saw them; its fold
ensemble then predicts an independent cohort (same simulator configuration, another seed). Both sets of
predictions are "never seen", and pooling them halves the sampling noise of a C-index judged on ~50 events
(``analyses/c_target_power.py``). This module reads the two parts, prefixes the patient ids with the part's
name (``train/P0001``, ``test/P0001``) so that they cannot meet, and computes, against the simulator's
ceilings of the same patients (:func:`raoutcome.synth.oracle.oracle_from_tables`):

* the damage count (SvdH total): Pearson r of the predicted against the recorded total (visits with a
  recorded score);
* every other per-visit outcome (HAQ, pain): R^2 = 1 - SSE/SST of the prediction as it is (no refitting),
  next to the noise-free R^2;
* the event (deformity): Harrell's C (lifelines ``concordance_index``) of the first-visit risk against the
  observed events, next to the oracle's C and the C of a risk that knows only the true baseline SvdH total.

The outcomes come from the registry (:mod:`raoutcome.outcomes`).

Used by ``raoutcome demo`` (its ``test`` stage) and ``analyses/learning_check.py``. It lives among the workflows,
not in :mod:`raoutcome.evaluation`, because it reads the simulator's truth (:mod:`raoutcome.synth.oracle`), which
the metrics and the analyses never import. No torch here.
"""
from __future__ import annotations

__all__ = ["evaluate", "never_seen_table", "per_fold", "pool", "read_part"]

from pathlib import Path
from typing import Sequence

import pandas as pd


def read_part(name: str, predictions: str | Path, cohort_dir: str | Path) -> dict:
    """One part's never-seen predictions (``to_frame``) and its truth tables
    (:func:`raoutcome.synth.oracle.read_truth_tables`), patient ids prefixed with ``name + "/"``.

    Parameters
    ----------
    name : str
        The part's name, e.g. ``"train"`` (out-of-fold) or ``"test"`` (an independent cohort).
    predictions : path
        A Predictions netCDF file.
    cohort_dir : path
        The simulated cohort it predicts (with its ``truth/`` folder).
    """
    from raoutcome.predictions import load_predictions, to_frame
    from raoutcome.synth.oracle import read_truth_tables

    def tag(table: pd.DataFrame) -> pd.DataFrame:
        return table.assign(patient_id=name + "/" + table["patient_id"].astype(str))

    return {"name": name, "frame": tag(to_frame(load_predictions(predictions))),
            "truth": {key: tag(table) for key, table in read_truth_tables(Path(cohort_dir)).items()}}


def pool(parts: Sequence[dict]) -> dict:
    """Pool parts of :func:`read_part`: the prediction frame, the observed visits and deformity events, and
    the simulator's ceilings of the pooled patients."""
    from raoutcome.anatomy import DEFORMITY_EVENT
    from raoutcome.synth.oracle import oracle_from_tables

    truth = {key: pd.concat([p["truth"][key] for p in parts], ignore_index=True) for key in parts[0]["truth"]}
    events = truth["events"]
    return {"frame": pd.concat([p["frame"] for p in parts], ignore_index=True), "visits": truth["visits"],
            "events": events[events["event"] == DEFORMITY_EVENT], "oracle": oracle_from_tables(**truth, null=False)}


def _bounded():
    """The registered per-visit outcomes judged by R^2 (every per-visit outcome but the damage count)."""
    from raoutcome.outcomes import outcomes

    return [o for o in outcomes() if o.per_visit and o.kind != "count"]


def evaluate(frame: pd.DataFrame, visits: pd.DataFrame, events: pd.DataFrame, risk_at: str = "baseline") -> dict:
    """Accuracy of a prediction frame against the observed ``visits`` and the events of the registered event
    (one row per patient), for the registered outcomes (:mod:`raoutcome.outcomes`): ``<damage>_pearson_r`` of
    the damage count's total, ``<name>_r2`` of every other per-visit outcome, and the C-index of the event's
    risk at the first and the last visit.

    Returns
    -------
    dict
        ``n_patients, n_visits, n_events``, ``svdh_pearson_r``, ``haq_r2``, ``pain_r2`` (with the built-in
        outcomes), ``c_index_baseline, c_index_last`` and ``c_index`` (the one named by ``risk_at``).
    """
    from raoutcome.evaluation.regression import pearson_r
    from raoutcome.evaluation.survival_metrics import harrell_c
    from raoutcome.outcomes import damage_outcome, event_outcome

    if risk_at not in ("baseline", "last"):
        raise ValueError(f"risk_at must be 'baseline' or 'last', not {risk_at!r}")
    out: dict = {"n_patients": int(frame["patient_id"].nunique()), "n_visits": int(len(frame))}
    damage = damage_outcome()
    for spec, metric in [(damage, "pearson_r")] * (damage is not None) + [(o, "r2") for o in _bounded()]:
        if spec.name not in frame or spec.column not in visits:
            continue
        ok = frame[["patient_id", "visit_id", spec.name]].merge(
            visits[["patient_id", "visit_id", spec.column]], on=["patient_id", "visit_id"],
            suffixes=("", "_observed")).dropna()
        observed = ok[spec.column + "_observed" if spec.column == spec.name else spec.column].to_numpy(float)
        predicted = ok[spec.name].to_numpy(float)
        if metric == "pearson_r":
            out[f"{spec.name}_pearson_r"] = pearson_r(observed, predicted) if len(ok) > 2 else float("nan")
        else:
            sst = ((observed - observed.mean()) ** 2).sum()
            out[f"{spec.name}_r2"] = float(1 - ((observed - predicted) ** 2).sum() / sst) if sst > 0 else float("nan")
    event = event_outcome()
    if event is not None and event.name in frame:
        events = events.set_index("patient_id")
        ordered = frame.sort_values(["patient_id", "time_years"])
        for where, pick in (("baseline", ordered.groupby("patient_id").head(1)),
                            ("last", ordered.groupby("patient_id").tail(1))):
            risk = pick.set_index("patient_id")[event.name]
            ev = events.loc[risk.index]
            out[f"c_index_{where}"] = harrell_c(ev["time_years"], ev["observed"], risk.to_numpy())
        out["c_index"] = out[f"c_index_{risk_at}"]
        out["n_events"] = int(events.loc[frame["patient_id"].unique(), "observed"].sum())
    return out


def per_fold(frame: pd.DataFrame, visits: pd.DataFrame, events: pd.DataFrame, risk_at: str = "baseline"
             ) -> list[dict]:
    """:func:`evaluate` on each fold's patients of an out-of-fold prediction frame (its ``fold`` column), so a
    fold that did not learn shows even when the pooled figures look fine; ``[]`` without folds."""
    if "fold" not in frame:
        return []
    out = []
    for fold in sorted(int(f) for f in frame["fold"].dropna().unique() if f >= 0):
        part = frame[frame["fold"] == fold]
        ids = set(part["patient_id"])
        out.append({"fold": fold, **evaluate(part, visits[visits["patient_id"].isin(ids)],
                                             events[events["patient_id"].isin(ids)], risk_at)})
    return out


def _row(label: str, pooled: dict, risk_at: str) -> dict:
    from raoutcome.outcomes import DEFAULT_EVENT, damage_outcome

    res = evaluate(pooled["frame"], pooled["visits"], pooled["events"], risk_at)
    oracle = pooled["oracle"]
    row = {"patients": label, "n_patients": res["n_patients"], "n_events": res.get("n_events", 0)}
    damage = damage_outcome()
    if damage is not None:
        row[f"{damage.name}_pearson_r"] = res.get(f"{damage.name}_pearson_r", float("nan"))
    for spec in _bounded():
        row[f"{spec.name}_r2"] = res.get(f"{spec.name}_r2", float("nan"))
        row[f"{spec.name}_r2_noise_free"] = oracle.get(spec.name, {}).get("r2_noise_free", float("nan"))
    ceilings = oracle.get(DEFAULT_EVENT, {})
    row.update(c_index=res.get("c_index", float("nan")), c_index_oracle=ceilings.get("c_index_oracle", float("nan")),
               c_index_true_damage=ceilings.get("c_index_svdh", float("nan")))
    return row


def never_seen_table(parts: Sequence[tuple[str, str | Path, str | Path]], risk_at: str = "baseline"
                     ) -> pd.DataFrame:
    """One row per group of never-seen patients: all parts pooled (when there are several), each part alone,
    and each fold of the first part (out-of-fold predictions carry a ``fold``).

    Parameters
    ----------
    parts : sequence of (name, predictions file, cohort folder)
        E.g. ``[("train", run / "cv_predictions.nc", cohort), ("test", "test.nc", test_cohort)]``.
    risk_at : {"baseline", "last"}
        Which visit's risk the C-index ranks.

    Returns
    -------
    pandas.DataFrame
        Columns ``patients, n_patients, n_events``, ``<damage>_pearson_r``, per other per-visit outcome
        ``<name>_r2`` and ``<name>_r2_noise_free`` (e.g. ``svdh_pearson_r, haq_r2, haq_r2_noise_free, pain_r2,
        pain_r2_noise_free``), ``c_index, c_index_oracle`` and ``c_index_true_damage`` (the C of the true
        baseline damage total).
    """
    read = [read_part(*part) for part in parts]
    rows = []
    if len(read) > 1:
        rows.append(_row("all never seen", pool(read), risk_at))
    for part in read:
        rows.append(_row(part["name"], pool([part]), risk_at))
    first = pool(read[:1])
    for fold in per_fold(first["frame"], first["visits"], first["events"], risk_at):
        ids = set(first["frame"].loc[first["frame"]["fold"] == fold["fold"], "patient_id"])
        one = {"name": read[0]["name"],
               "frame": read[0]["frame"][read[0]["frame"]["patient_id"].isin(ids)],
               "truth": {k: t[t["patient_id"].isin(ids)] for k, t in read[0]["truth"].items()}}
        rows.append(_row(f"{read[0]['name']}, fold {fold['fold']}", pool([one]), risk_at))
    return pd.DataFrame(rows)
