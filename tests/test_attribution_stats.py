"""Region statistics: exact shares on a hand-made map, density ratios with patient-bootstrap CIs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.anatomy import REGIONS
from raoutcome.attribution.stats import (density_ratio, head_contrast, image_region_stats, outside_sharp, pooled_relative_density,
                                         region_table, summarise)
from raoutcome.errors import InputError

SITE, PERI, SOFT, BG = REGIONS["svdh_site"], REGIONS["periarticular"], REGIONS["soft_tissue"], REGIONS["background"]


def test_image_region_stats_exact():
    labels = np.full((10, 10), BG, np.uint8)
    labels[:, :5] = SOFT          # 50 px
    labels[0:2, 5:10] = SITE      # 10 px
    labels[2:4, 5:10] = PERI      # 10 px
    attr = np.zeros((10, 10))
    attr[labels == SITE] = 1.0    # mass 10
    attr[labels == PERI] = 3.0    # mass 30
    st = image_region_stats(attr, labels).set_index("region")
    assert st.at["svdh_site", "area"] == 10 and st.at["periarticular", "mass"] == 30
    assert st.at["periarticular", "mass_share"] == pytest.approx(0.75)
    assert st.at["svdh_site", "area_share"] == pytest.approx(0.1)
    assert st.at["periarticular", "density"] == pytest.approx(3.0)
    assert st.at["periarticular", "relative_density"] == pytest.approx(7.5)
    assert st.at["soft_tissue", "mass"] == 0
    assert st.at["carpus", "area"] == 0 and np.isnan(st.at["carpus", "density"])  # absent region kept, NaN density
    assert st["area_share"].sum() == pytest.approx(1) and st["mass_share"].sum() == pytest.approx(1)


def _cohort(n_patients, images_per_patient, peri_gain, rng, shared_within_patient=False):
    n = n_patients * images_per_patient
    labels = np.full((n, 16, 16), SOFT, np.uint8)
    labels[:, 2:6, 2:6] = SITE
    labels[:, 8:12, 8:12] = PERI
    maps = rng.random((n, 16, 16))
    gains = rng.lognormal(np.log(peri_gain), 0.3, n)
    if shared_within_patient:  # all images of a patient alike: they carry one patient's worth of information
        gains = np.repeat(gains[::images_per_patient], images_per_patient)
    maps[:, 8:12, 8:12] *= gains[:, None, None]
    ident = pd.DataFrame({"image": [f"i{i}" for i in range(n)],
                          "patient_id": [f"p{i // images_per_patient}" for i in range(n)]})
    return region_table({"haq": maps}, labels, ident)


def test_density_ratio_ci_excludes_parity_when_planted_and_covers_it_under_null():
    rng = np.random.default_rng(0)
    planted = density_ratio(_cohort(30, 2, 2.0, rng), "haq", n_boot=400)
    assert planted["ci_low"] > 1.5 and 1.7 < planted["ratio"] < 2.6
    assert planted["n_images"] == 60 and planted["n_patients"] == 30
    null = density_ratio(_cohort(30, 2, 1.0, rng), "haq", n_boot=400)
    assert null["ci_low"] < 1 < null["ci_high"]


def test_bootstrap_resamples_patients_not_images():
    rng = np.random.default_rng(1)
    # same number of images; when a patient's images are copies of one another, the patient bootstrap must
    # see 10 units, not 50, and give a wider interval
    grouped = density_ratio(_cohort(10, 5, 1.5, rng, shared_within_patient=True), "haq", n_boot=400)
    independent = density_ratio(_cohort(50, 1, 1.5, rng), "haq", n_boot=400)
    assert grouped["n_patients"] == 10
    assert (grouped["ci_high"] - grouped["ci_low"]) > 1.5 * (independent["ci_high"] - independent["ci_low"])


def test_outside_share_and_head_comparison():
    rng = np.random.default_rng(2)
    n = 8
    labels = np.full((n, 10, 10), SOFT, np.uint8)
    labels[:, :2, :] = SITE  # 20 % of the area
    site_only = np.where(labels == SITE, 1.0, 0.0)
    elsewhere = np.where(labels == SITE, 0.0, 1.0) * rng.random((n, 10, 10))
    ident = pd.DataFrame({"image": list("abcdefgh"), "patient_id": list("aabbccdd")})
    table = region_table({"svdh": site_only, "haq": elsewhere}, labels, ident)
    svdh = outside_sharp(table, "svdh", n_boot=50)
    assert svdh["mass_outside"] == pytest.approx(0) and svdh["area_outside"] == pytest.approx(0.8)
    assert outside_sharp(table, "haq", n_boot=50)["mass_outside"] == pytest.approx(1)
    dens = pooled_relative_density(table)
    assert dens.at["svdh_site", "svdh"] == pytest.approx(5) and dens.at["svdh_site", "haq"] == pytest.approx(0)
    summ = summarise(table, n_boot=50)
    assert set(summ["head"]) == {"svdh", "haq"}
    row = summ[(summ["head"] == "haq") & (summ["region"] == "soft_tissue")].iloc[0]
    assert np.isinf(row["ratio_to_svdh_site"]) or row["ratio_to_svdh_site"] > 100


def test_bad_inputs_name_the_problem():
    labels = np.zeros((2, 4, 4), np.uint8)
    with pytest.raises(InputError, match="differ in shape"):
        region_table({"haq": np.zeros((2, 4, 5))}, labels, pd.DataFrame({"image": ["a", "b"], "patient_id": "p"}))
    table = region_table({"haq": np.ones((2, 4, 4))}, labels, pd.DataFrame({"image": ["a", "b"], "patient_id": "p"}))
    with pytest.raises(InputError, match="no rows for head 'svdh'"):
        density_ratio(table, "svdh")
    with pytest.raises(InputError, match="'periarticular' is absent"):
        density_ratio(table, "haq")


def test_head_contrast_cancels_what_both_heads_share():
    rng = np.random.default_rng(3)
    n = 30
    labels = np.full((n, 16, 16), SOFT, np.uint8)
    labels[:, 2:6, 2:6] = SITE
    labels[:, 8:12, 8:12] = PERI
    common = rng.random((n, 16, 16))
    common[:, 8:12, 8:12] *= 1.5  # both heads favour periarticular pixels (e.g. they are bright)
    haq = common.copy()
    haq[:, 8:12, 8:12] *= 2.0     # the HAQ head leans on them twice as much again
    ident = pd.DataFrame({"image": [f"i{i}" for i in range(n)], "patient_id": [f"p{i // 2}" for i in range(n)]})
    table = region_table({"haq": haq, "svdh": common}, labels, ident)
    assert density_ratio(table, "svdh", n_boot=200)["ci_low"] > 1  # the shared bias alone exceeds parity
    c = head_contrast(table, "haq", "svdh", n_boot=200)
    assert c["contrast"] == pytest.approx(2.0, rel=0.02) and c["n_patients"] == 15  # per-image shares: ~2
    same = head_contrast(table, "svdh", "svdh", n_boot=200)
    assert same["contrast"] == pytest.approx(1) and same["ci_low"] == pytest.approx(1) == same["ci_high"]
