"""raoutcome.reporting.labels: the reader's names for columns, heads and terms, used by the report's figures."""
from __future__ import annotations

import numpy as np
import pandas as pd

from raoutcome.reporting.labels import label, label_list, years


def test_labels_of_columns_heads_and_terms():
    assert label("svdh_total") == "SvdH total" and label("sex_m") == "male sex"
    assert label("pred_risk") == "image risk score" and label("pred_haq") == "image HAQ score"
    assert label("time_years") == "time (years)" and label("svdh_total:time_years") == "SvdH total × time (years)"
    assert label("log1p_svdh_total") == "log(SvdH total + 1)"
    assert label("svdh") == "SvdH total" and label("jsn") == "SvdH narrowing" and label("haq") == "HAQ"
    assert label("smoking_pack_years") == "smoking pack years"  # unknown: readable, not invented
    assert label_list("log1p_svdh_total,sex_m,age") == "log(SvdH total + 1), male sex, age (years)"
    assert [years(v) for v in (1.4712, 0.93, 1.0, 2.0, 12.4)] == ["1.5 years", "0.93 years", "1 year", "2 years",
                                                                 "12 years"]


def test_figures_show_labels_not_column_names():
    import matplotlib.pyplot as plt

    from raoutcome.reporting.attribution_figures import attribution_overlay_figure
    from raoutcome.reporting.stats_figures import coefficient_figure, forest_figure, scatter_figure

    image = np.zeros((16, 16))
    fig = attribution_overlay_figure(image, {h: np.ones((16, 16)) for h in ("svdh", "jsn", "haq", "risk")})
    assert [ax.get_title() for ax in fig.axes] == ["radiograph", "SvdH total", "SvdH narrowing", "HAQ",
                                                  "deformity risk"]
    plt.close(fig)
    table = pd.DataFrame({"outcome": "haq", "model": ["SvdH", "SvdH", "image"], "term": ["time_years", "svdh_total",
                                                                                          "pred_haq"],
                          "estimate": [0.1, 0.2, 0.3], "ci_lower": 0.0, "ci_upper": 0.5})
    fig = coefficient_figure(table, "mixed models")
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_yticklabels()] == ["SvdH model: time (years)", "SvdH model: SvdH total",
                                                           "image model: image HAQ score"]
    assert ax.get_title() == "HAQ"
    plt.close(fig)
    hr = pd.DataFrame({"covariate": ["pred_risk", "sex_m"], "hr": [1.5, 1.2], "hr_lower": [1.1, 0.8],
                       "hr_upper": [2.0, 1.8], "p": [0.01, 0.4], "per": ["SD", "unit"]})
    fig = forest_figure(hr)
    ticks = " ".join(t.get_text() for t in fig.axes[0].get_yticklabels())
    assert "image risk score (per SD)" in ticks and "male sex (per unit)" in ticks and "pred_" not in ticks
    plt.close(fig)
    fig = scatter_figure(np.arange(5.0), np.arange(5.0), "svdh", "svdh_total")
    assert fig.axes[0].get_xlabel() == "observed SvdH total" and fig.axes[0].get_title().startswith("SvdH total:")
    plt.close(fig)
