"""The patient-sequence Dataset: items, missing views/labels, risk visit, augmentation, collate."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from raoutcome.anatomy import VIEWS
from raoutcome.cohort import load
from raoutcome.imaging.dataset import Augment, PatientSequences, collate_patients


class FakeLoader:
    """Pixels that encode (path, view) so tests can tell images apart; counts calls."""

    def __init__(self, size=8):
        self.size, self.calls = size, []

    def get(self, path, view=None):
        self.calls.append((str(path), view))
        value = (hash((str(path), view)) % 1000) / 1000
        return np.full((1, self.size, self.size), value, np.float32)


@pytest.fixture
def cohort(tiny_cohort):
    c = load(tiny_cohort)
    # p2 lost its right hand at v1; p2's v0 HAQ is missing
    c.images = c.images[~((c.images["patient_id"] == "p2") & (c.images["visit_id"] == "v1")
                          & (c.images["view"] == "hand_right"))].reset_index(drop=True)
    c.visits.loc[(c.visits["patient_id"] == "p2") & (c.visits["visit_id"] == "v0"), "haq"] = np.nan
    return c


def test_item_holds_the_patient_sequence(cohort):
    ds = PatientSequences(cohort, FakeLoader(), ["p2", "p1"])
    assert len(ds) == 2 and ds.patient_ids == ["p2", "p1"]
    item = ds[0]
    assert item["images"].shape == (5, 1, 8, 8)  # 3 visits x 2 views, one missing
    assert item["img_t"].tolist() == [0, 0, 1, 2, 2]
    assert item["img_v"].tolist() == [VIEWS.index("hand_left"), VIEWS.index("hand_right"), VIEWS.index("hand_left"),
                                      VIEWS.index("hand_left"), VIEWS.index("hand_right")]
    v = cohort.visits[cohort.visits["patient_id"] == "p2"]
    assert np.allclose(item["time"], v["time_years"])
    assert math.isnan(item["targets"]["target_haq"][0])
    assert np.allclose(item["targets"]["target_svdh"], v["svdh_total"])
    assert ds.visit_ids[0] == ["v0", "v1", "v2"]
    assert ds.n_images == 11 and ds.n_visits == 6


def test_views_filter_and_event_targets(cohort):
    ds = PatientSequences(cohort, FakeLoader(), ["p1", "p2"], views=["hand_left"])
    assert set(ds[0]["img_v"].tolist()) == {VIEWS.index("hand_left")}
    # p1 has an observed deformity at 1.5 years (after v1 at 1.0): its last visit before the event is v1
    assert ds.event_observed.tolist() == [1.0, 0.0]
    assert ds.event_time[0] == pytest.approx(1.5)
    assert ds.risk_visit.tolist() == [1, 2]
    assert PatientSequences(cohort, FakeLoader(), ["p1"], risk_visit="baseline").risk_visit.tolist() == [0]
    assert PatientSequences(cohort, FakeLoader(), ["p1"], risk_visit="last").risk_visit.tolist() == [2]
    with pytest.raises(ValueError):
        PatientSequences(cohort, FakeLoader(), ["p1"], risk_visit="first")


def test_augmentation_reproducible_per_epoch_and_patient(cohort):
    ds = PatientSequences(cohort, FakeLoader(16), ["p1", "p2"], augment=Augment(shift=3), seed=7)
    plain = PatientSequences(cohort, FakeLoader(16), ["p1", "p2"])
    a = ds[0]["images"]
    assert np.array_equal(a, ds[0]["images"])
    assert not np.array_equal(a, plain[0]["images"])
    ds.set_epoch(1)
    assert not np.array_equal(a, ds[0]["images"])
    ds.set_epoch(0)
    assert np.array_equal(a, ds[0]["images"])
    assert a.min() >= 0 and a.max() <= 1


def test_collate_pads_visits_and_concatenates_images(cohort):
    c = cohort.subset(["p1", "p2"])
    c.visits = c.visits[~((c.visits["patient_id"] == "p1") & (c.visits["visit_id"] == "v2"))]
    ds = PatientSequences(c, FakeLoader(), ["p1", "p2"])
    batch = collate_patients([ds[0], ds[1]])
    assert batch["images"].shape == (4 + 5, 1, 8, 8)  # p1: 2 visits x 2 views; p2: 5 images
    assert batch["img_b"].tolist() == [0] * 4 + [1] * 5
    assert batch["visit_mask"].tolist() == [[True, True, False], [True, True, True]]
    assert torch.isnan(batch["target_svdh"][0, 2])
    assert batch["time"].shape == (2, 3)
    assert batch["index"].tolist() == [0, 1]
