"""Patient-grouped, event-stratified splits.

Every split here works on patients, never on visits or images, so no patient
can ever sit on both sides of a split. Stratification is on one status per
patient (did the event happen). ``kfold`` shuffles each stratum with the seed
and deals it out round-robin, continuing the count from one stratum to the
next: fold sizes differ by at most one patient and so do each fold's event
counts, even when events are rarer than folds (where sklearn's
StratifiedKFold warns). ``split`` takes prefixes of an order that interleaves
the strata in proportion.
"""
from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np

from raoutcome.errors import InputError


class Split(NamedTuple):
    """Patient ids for training, validation and testing (each sorted)."""

    train: list[str]
    validation: list[str]
    test: list[str]


def _stratified_order(patients: Sequence[str], status: Sequence[int], seed: int) -> list[str]:
    """All patients in an order that interleaves the strata in proportion.

    Each stratum is shuffled; its i-th patient (of n) gets position (i + u) / n with
    one random offset u per stratum; sorting on position interleaves the strata, so
    every prefix of the order is stratified to within one patient per stratum.
    """
    rng = np.random.default_rng(seed)
    patients = np.asarray(patients, dtype=object)
    status = np.asarray(status)
    keys: list[np.ndarray] = []
    members: list[np.ndarray] = []
    for value in np.unique(status):
        idx = np.flatnonzero(status == value)
        idx = idx[rng.permutation(len(idx))]
        offset = rng.uniform(0.0, 1.0)
        keys.append((np.arange(len(idx)) + offset) / len(idx))
        members.append(idx)
    if not members:
        return []
    key = np.concatenate(keys)
    idx = np.concatenate(members)
    tie = rng.permutation(len(idx))
    order = idx[np.lexsort((tie, key))]
    return [str(p) for p in patients[order]]


def kfold(patients: Sequence[str], status: Sequence[int], k: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """``k`` (train_ids, test_ids) pairs; each patient is in exactly one test fold."""
    n = len(patients)
    if not isinstance(k, (int, np.integer)) or k < 2:
        raise InputError(f"k-fold cross-validation needs k >= 2 (got k={k!r})")
    if k > n:
        raise InputError(f"k-fold cross-validation with k={k} needs at least {k} patients (cohort has {n})")
    rng = np.random.default_rng(seed)
    patients = np.asarray([str(p) for p in patients], dtype=object)
    status = np.asarray(status)
    # Deal each shuffled stratum round-robin, continuing the count across strata:
    # every stratum is spread evenly and fold sizes differ by at most one.
    dealt = np.concatenate([rng.permutation(np.flatnonzero(status == v)) for v in np.unique(status)])
    fold_of = np.empty(n, dtype=np.int64)
    fold_of[dealt] = rng.permutation(k)[np.arange(n) % k]
    out = []
    for f in range(k):
        out.append((sorted(patients[fold_of != f].tolist()), sorted(patients[fold_of == f].tolist())))
    return out


def _count(fraction: float, n: int, name: str) -> int:
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"split fraction {name}={fraction!r} must be in [0, 1)")
    if fraction == 0.0:
        return 0
    return max(1, int(round(fraction * n)))


def split(patients: Sequence[str], status: Sequence[int], test: float = 0.2, val: float = 0.1,
          seed: int = 0) -> Split:
    """Train / validation / test patient lists with about ``test`` and ``val`` of the patients."""
    n = len(patients)
    n_test, n_val = _count(test, n, "test"), _count(val, n, "val")
    if n - n_test - n_val < 1:
        raise InputError(f"cannot split {n} patient(s) into test={test}, val={val} and a non-empty "
                         f"training set")
    order = _stratified_order(patients, status, seed)
    return Split(
        train=sorted(order[n_test + n_val:]),
        validation=sorted(order[n_test:n_test + n_val]),
        test=sorted(order[:n_test]),
    )
