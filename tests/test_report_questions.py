"""The report's incremental-value tables: one per question, each captioned with its question in plain words."""
from __future__ import annotations

import numpy as np
import pandas as pd

from raoutcome.analysis.incremental import PUBLISHED_CAVEAT, QUESTIONS
from raoutcome.reporting.html import Table, Text
from raoutcome.reporting.study_report import SHARP_ONLY_WARNING, _incremental_tables


def _rows(question: str, p: float, **extra) -> dict:
    return dict(question=question, test="cox_lrt", outcome="deformity", base="spline(log1p_svdh_total),age",
                added="pred_risk", estimate=9.0, statistic=9.0, df=1, p_value=p, n=180, ci_lower=np.nan,
                ci_upper=np.nan, **extra)


def test_both_questions_get_their_own_captioned_table_and_no_warning():
    inc = pd.DataFrame([_rows(QUESTIONS["beyond_sharp"], 0.001),
                        _rows(QUESTIONS["beyond_damage"], 0.4, reliability_source="retest: 600 re-read visits")])
    blocks = _incremental_tables(inc)
    assert [type(b) for b in blocks] == [Table, Table]
    first, second = blocks
    assert first.caption.startswith("Question 1") and "more precisely than a human reader" in first.caption
    assert second.caption.startswith("Question 2") and "biomarker question" in second.caption
    assert "Reader error from: retest: 600 re-read visits" in second.caption
    assert "0.4" in second.frame["p-value"].iloc[0]


def test_only_the_first_question_gives_a_plain_warning():
    blocks = _incremental_tables(pd.DataFrame([_rows(QUESTIONS["beyond_sharp"], 0.001)]))
    assert isinstance(blocks[-1], Text) and blocks[-1].text == SHARP_ONLY_WARNING
    assert _incremental_tables(None) == []


def test_a_correction_from_a_published_reliability_carries_its_caveat():
    source = "published SDC 3.0 SvdH units (mean over 15 RCT data sets, Navarro-Compán et al., Ann Rheum Dis 2014)"
    inc = pd.DataFrame([_rows(QUESTIONS["beyond_sharp"], 0.001),
                        _rows(QUESTIONS["beyond_damage"], 0.4, reliability_source=source)])
    blocks = _incremental_tables(inc)
    assert [type(b) for b in blocks] == [Table, Table, Text]
    assert blocks[-1].text == PUBLISHED_CAVEAT and "approximate" in PUBLISHED_CAVEAT
    retest = _incremental_tables(pd.DataFrame([_rows(QUESTIONS["beyond_damage"], 0.4, reliability_source="retest: 9")]))
    assert not any(isinstance(b, Text) for b in retest)
