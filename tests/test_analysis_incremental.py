"""Beyond-Sharp tests: each statistic checked against an independent computation."""
from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from lifelines import CoxPHFitter
from scipy import stats

from raoutcome.analysis import incremental as inc
from raoutcome.analysis.features import AnalysisData, NotCrossFittedWarning, check_cross_fitted
from raoutcome.errors import InputError
from raoutcome.predictions import from_frame


def _patients(n=300, beta_image=0.7, seed=0):
    rng = np.random.default_rng(seed)
    sharp = rng.gamma(2.0, 5.0, n)
    age = rng.normal(55, 10, n)
    image = rng.normal(size=n)
    t = rng.exponential(1 / (0.2 * np.exp(0.03 * sharp + beta_image * image)))
    return pd.DataFrame({"svdh_total": sharp, "age": age, "image": image, "noise": rng.normal(size=n),
                         "duration": np.minimum(t, 4.0), "observed": (t < 4.0).astype(int),
                         "haq": 0.5 + 0.02 * sharp + 0.3 * image + rng.normal(0, 0.3, n)})


def test_cox_lrt_equals_chi2_of_twice_the_likelihood_gain():
    df = _patients()
    res = inc.cox_lrt(df, ["svdh_total", "age"], ["image"])
    full = CoxPHFitter().fit(df[["duration", "observed", "svdh_total", "age", "image"]], "duration", "observed")
    base = CoxPHFitter().fit(df[["duration", "observed", "svdh_total", "age"]], "duration", "observed")
    stat = 2 * (full.log_likelihood_ - base.log_likelihood_)
    assert res.statistic == pytest.approx(stat, rel=1e-6)
    assert res.p_value == pytest.approx(stats.chi2.sf(stat, 1), rel=1e-6)
    assert res.df == 1 and res.n == len(df) and res.p_value < 1e-6


def test_cox_lrt_with_empty_base_is_lifelines_test_against_the_null_model():
    df = _patients()
    res = inc.cox_lrt(df, [], ["image"])
    ref = CoxPHFitter().fit(df[["duration", "observed", "image"]], "duration", "observed").log_likelihood_ratio_test()
    assert res.statistic == pytest.approx(ref.test_statistic, rel=1e-6)


def test_mixed_lrt_uses_maximum_likelihood_fits():
    rng = np.random.default_rng(3)
    rows = []
    for i in range(60):
        u, z = rng.normal(0, 0.3), rng.normal()
        for t in range(3):
            s = 5 + 2 * t + rng.normal(0, 2)
            rows.append({"patient_id": f"p{i}", "time_years": float(t), "svdh_total": s, "image": z + rng.normal(0, .2),
                         "haq": 0.4 + u + 0.03 * s + 0.2 * z + rng.normal(0, 0.2)})
    df = pd.DataFrame(rows)
    res = inc.mixed_lrt(df, "haq", ["svdh_total"], ["image"], random_slope=False)
    kw = dict(groups=df["patient_id"])
    ll1 = smf.mixedlm("haq ~ time_years + svdh_total + image", df, **kw).fit(reml=False).llf
    ll0 = smf.mixedlm("haq ~ time_years + svdh_total", df, **kw).fit(reml=False).llf
    assert res.statistic == pytest.approx(2 * (ll1 - ll0), rel=1e-4)
    assert res.p_value == pytest.approx(stats.chi2.sf(2 * (ll1 - ll0), 1), rel=1e-3)
    assert res.extra["converged"]


def test_partial_r2_and_f_test_by_hand():
    df = _patients(n=80)
    res = inc.partial_r2(df, "haq", ["svdh_total", "age"], ["image"])
    y = df["haq"].to_numpy()

    def ssr(cols):
        x = np.column_stack([np.ones(len(df)), df[cols].to_numpy()])
        beta, *_ = np.linalg.lstsq(x, y, rcond=None)
        return float(((y - x @ beta) ** 2).sum())

    s0, s1 = ssr(["svdh_total", "age"]), ssr(["svdh_total", "age", "image"])
    df_resid = len(df) - 4
    f = (s0 - s1) / 1 / (s1 / df_resid)
    assert res.estimate == pytest.approx((s0 - s1) / s0, rel=1e-8)
    assert res.statistic == pytest.approx(f, rel=1e-8)
    assert res.p_value == pytest.approx(stats.f.sf(f, 1, df_resid), rel=1e-6)


def test_continuous_nri_without_censoring_is_the_classic_formula():
    # no one censored before the horizon: KM probabilities are plain proportions, and
    # NRI = P(up | event) - P(down | event) + P(down | non-event) - P(up | non-event)
    time = np.array([1, 2, 3, 5, 6, 7, 8, 9, 9, 9], dtype=float)
    event = np.array([1, 1, 1, 1, 0, 0, 0, 0, 0, 0])
    old = np.full(10, 0.3)
    new = np.array([0.4, 0.5, 0.2, 0.3, 0.2, 0.1, 0.4, 0.2, 0.3, 0.2])
    ev = time <= 4  # the events by the horizon are the first three
    up, down = new > old, new < old
    classic = (up[ev].mean() - down[ev].mean()) + (down[~ev].mean() - up[~ev].mean())
    nri, _, _ = inc._nri(time, event, old, new, horizon=4.0)
    assert nri == pytest.approx(classic)


def test_delta_c_and_nri_see_real_signal_and_not_noise():
    df = _patients(n=300)
    signal = inc.delta_c_index(df, ["svdh_total", "age"], ["image"], n_boot=100)
    noise = inc.delta_c_index(df, ["svdh_total", "age"], ["noise"], n_boot=100)
    assert signal.ci_lower > 0 and signal.estimate > 0.05
    assert noise.ci_lower < 0 < noise.ci_upper
    assert signal.extra["c_full"] == pytest.approx(signal.extra["c_base"] + signal.estimate)
    nri = inc.continuous_nri(df, ["svdh_total", "age"], ["image"], horizon=2.0, n_boot=100)
    assert nri.ci_lower > 0


def _analysis_data(cross_fitted: bool) -> AnalysisData:
    pts = _patients(n=150).assign(patient_id=[f"p{i}" for i in range(150)], time_years=0.0)
    rng = np.random.default_rng(1)
    visits = pd.concat([pts.assign(time_years=float(t), haq=pts["haq"] + 0.05 * t + rng.normal(0, 0.2, len(pts)))
                        for t in range(3)])
    return AnalysisData(visits=visits.drop(columns=["duration", "observed"]), patients=pts, covariates=["age"],
                        heads=["risk"], cross_fitted=cross_fitted)


def test_beyond_sharp_runs_every_test_and_names_the_event():
    table = inc.beyond_sharp(_analysis_data(True), "image", outcome_images={"haq": "image"}, n_boot=50)
    assert set(table["test"]) == {"cox_lrt", "delta_c", "continuous_nri", "mixed_lrt", "partial_r2_f"}
    assert set(table.loc[table["test"] == "cox_lrt", "outcome"]) == {"deformity"}
    # SvdH enters as a natural cubic spline of log(1 + SvdH) by default (4 df)
    assert (table["base"] == "spline(log1p_svdh_total),age").all()
    pts = _analysis_data(True).patients
    from raoutcome.analysis.reader_error import spline_basis
    basis = spline_basis(np.log1p(pts["svdh_total"].to_numpy()), df=4, prefix="b")
    ref = inc.cox_lrt(pd.concat([pts, basis], axis=1), [*basis.columns, "age"], ["image"])
    assert table.loc[table["test"] == "cox_lrt", "p_value"].item() == pytest.approx(ref.p_value, rel=1e-9)
    logged = inc.beyond_sharp(_analysis_data(True), "image", sharp_transform="log1p", outcome_images={},
                              tests=("cox_lrt",))
    assert logged["base"].item() == "log1p_svdh_total,age"
    linear = inc.beyond_sharp(_analysis_data(True), "image", sharp_transform=None, outcome_images={},
                              tests=("cox_lrt",))
    assert linear["base"].item() == "svdh_total,age"


def test_beyond_sharp_can_adjust_for_several_sharp_columns():
    data = _analysis_data(True)
    rng = np.random.default_rng(3)
    split = rng.uniform(0.3, 0.7, len(data.patients))
    data.patients["svdh_erosion"] = data.patients["svdh_total"] * split
    data.patients["svdh_jsn"] = data.patients["svdh_total"] * (1 - split)
    table = inc.beyond_sharp(data, "image", sharp=("svdh_erosion", "svdh_jsn"), sharp_transform="log1p",
                             outcome_images={}, tests=("cox_lrt",))
    assert table["base"].item() == "log1p_svdh_erosion,log1p_svdh_jsn,age"
    pts = data.patients.assign(log1p_svdh_erosion=np.log1p(data.patients["svdh_erosion"]),
                               log1p_svdh_jsn=np.log1p(data.patients["svdh_jsn"]))
    ref = inc.cox_lrt(pts, ["log1p_svdh_erosion", "log1p_svdh_jsn", "age"], ["image"])
    assert table["p_value"].item() == pytest.approx(ref.p_value, rel=1e-9)
    with pytest.raises(InputError, match="at least one"):
        inc.beyond_sharp(data, "image", sharp=(), outcome_images={}, tests=("cox_lrt",))


def test_not_cross_fitted_scores_warn_or_are_refused():
    with pytest.warns(NotCrossFittedWarning):
        inc.beyond_sharp(_analysis_data(False), "image", outcome_images={}, n_boot=20, tests=("cox_lrt",))
    with pytest.raises(InputError, match="not cross-fitted"):
        inc.beyond_sharp(_analysis_data(False), "image", require_cross_fitted=True)
    frame = pd.DataFrame({"patient_id": ["a", "b"], "visit_id": ["v0", "v0"], "time_years": [0.0, 0.0], "risk": [1, 2]})
    with pytest.warns(NotCrossFittedWarning):
        assert not check_cross_fitted(from_frame(frame, folds={"a": 0}))  # b has fold -1
    with pytest.raises(InputError):
        check_cross_fitted(from_frame(frame), require=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_cross_fitted(from_frame(frame, folds={"a": 0, "b": 1}))
