"""Patient-grouped, event-stratified k-fold and train/validation/test splits."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from raoutcome.cohort import load
from raoutcome.cohort.splits import kfold, split
from raoutcome.errors import InputError


@st.composite
def cohorts(draw):
    n = draw(st.integers(min_value=3, max_value=80))
    status = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n))
    patients = [f"p{i}" for i in range(n)]
    return patients, status


@settings(max_examples=150, deadline=None)
@given(cohorts(), st.integers(2, 10), st.integers(0, 2**31 - 1))
def test_kfold_partitions_patients_and_balances_events(data, k, seed):
    patients, status = data
    k = min(k, len(patients))
    folds = kfold(patients, status, k, seed=seed)
    assert len(folds) == k
    tests = [set(test) for _, test in folds]
    assert sum(len(t) for t in tests) == len(patients)  # disjoint ...
    assert set().union(*tests) == set(patients)          # ... and covering
    for (train, _test), t in zip(folds, tests):
        assert set(train) | t == set(patients) and not (set(train) & t)
    sizes = [len(t) for t in tests]
    assert max(sizes) - min(sizes) <= 1
    events = dict(zip(patients, status))
    counts = [sum(events[p] for p in t) for t in tests]
    assert max(counts) - min(counts) <= 1  # event status balanced across folds


@settings(max_examples=150, deadline=None)
@given(cohorts(), st.floats(0.05, 0.5), st.floats(0.0, 0.3), st.integers(0, 2**31 - 1))
def test_split_partitions_patients_and_is_stratified(data, test, val, seed):
    patients, status = data
    n = len(patients)
    if round(test * n) + round(val * n) + 2 > n:
        return
    parts = split(patients, status, test=test, val=val, seed=seed)
    sets = [set(parts.train), set(parts.validation), set(parts.test)]
    assert sum(len(s) for s in sets) == n and set().union(*sets) == set(patients)
    assert len(parts.test) == max(1, round(test * n))
    events = dict(zip(patients, status))
    rate = sum(status) / n
    # test is a prefix of an order interleaving the strata (off by < 1 event from its
    # fair share); validation is the next slice, a difference of two prefixes (< 2)
    for part, tol in ((parts.test, 1.0), (parts.validation, 2.0)):
        assert abs(sum(events[p] for p in part) - rate * len(part)) <= tol + 1e-9


def test_same_seed_same_folds_other_seed_other_folds():
    patients = [f"p{i}" for i in range(40)]
    status = [i % 3 == 0 for i in range(40)]
    assert kfold(patients, status, 5, seed=1) == kfold(patients, status, 5, seed=1)
    assert kfold(patients, status, 5, seed=1) != kfold(patients, status, 5, seed=2)
    assert split(patients, status, seed=3) == split(patients, status, seed=3)


def test_rare_events_are_spread_not_stacked():
    patients = [f"p{i}" for i in range(100)]
    status = [1 if i % 10 == 3 else 0 for i in range(100)]  # 10 events, evenly spaced in the input
    for seed in range(5):
        counts = [sum(status[int(p[1:])] for p in test) for _, test in kfold(patients, status, 5, seed=seed)]
        assert counts == [2, 2, 2, 2, 2]


def test_bad_arguments():
    patients = ["a", "b", "c"]
    with pytest.raises(InputError, match="k >= 2"):
        kfold(patients, [0, 0, 1], 1)
    with pytest.raises(InputError, match="at least 4 patients"):
        kfold(patients, [0, 0, 1], 4)
    with pytest.raises(InputError, match="must be in"):
        split(patients, [0, 0, 1], test=1.2)
    with pytest.raises(InputError, match="non-empty"):
        split(patients, [0, 0, 1], test=0.5, val=0.4)


def test_cohort_kfold_and_split_group_by_patient(tiny_cohort):
    cohort = load(tiny_cohort)
    folds = cohort.kfold(3, seed=0)
    assert sorted(p for _, test in folds for p in test) == cohort.patient_ids
    status = cohort.event_status()
    for train, test in folds:
        assert status[test].sum() <= 1  # the two events (p1, p3) land in different folds
        images = cohort.subset(train).images
        assert not set(images["patient_id"]) & set(test)
    parts = cohort.split(test=0.34, val=0.17, seed=0)
    assert sorted(parts.train + parts.validation + parts.test) == cohort.patient_ids
    assert len(parts.test) == 2 and len(parts.validation) == 1
    unstratified = cohort.kfold(2, seed=0, stratify_event=None)
    assert sorted(p for _, test in unstratified for p in test) == cohort.patient_ids
    train, val, test = parts  # unpacks like a tuple
    assert (train, val, test) == (parts.train, parts.validation, parts.test)
