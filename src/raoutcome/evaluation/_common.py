"""Input checks shared by every metric: one-dimensional float arrays of one length.

Missing values (NaN) are allowed everywhere: a metric keeps the rows where all
of its inputs are finite, as the rest of the library masks missing outcomes.
Anything else that is wrong (different lengths, text where numbers belong,
event flags other than 0/1) is the caller's input and raises
:class:`raoutcome.errors.InputError` naming the argument, index and value.
"""
from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from raoutcome.errors import InputError


def as_array(values: ArrayLike, name: str) -> np.ndarray:
    """A 1-D float64 copy of ``values``; text or nested shapes are rejected."""
    try:
        arr = np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as err:
        raise InputError(f"{name}: expected numbers ({err})") from err
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise InputError(f"{name}: expected a 1-D array, got shape {arr.shape}")
    return arr


def same_length(named: dict[str, np.ndarray]) -> int:
    """Check that every array has one length; return it."""
    lengths = {name: len(arr) for name, arr in named.items()}
    if len(set(lengths.values())) > 1:
        listed = ", ".join(f"{name}={n}" for name, n in lengths.items())
        raise InputError(f"arrays differ in length ({listed})")
    return next(iter(lengths.values()), 0)


def complete(min_n: int = 1, **named: ArrayLike) -> tuple[np.ndarray, ...]:
    """Arrays restricted to rows where every one is finite (missing values dropped).

    Raises InputError when fewer than ``min_n`` complete rows remain.
    """
    arrays = {name: as_array(v, name) for name, v in named.items()}
    same_length(arrays)
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays.values()])
    n = int(keep.sum())
    if n < min_n:
        raise InputError(f"{', '.join(arrays)}: {n} complete row(s), need at least {min_n}")
    return tuple(a[keep] for a in arrays.values())


def check_events(event: np.ndarray, name: str = "event") -> np.ndarray:
    """Event flags as bool; anything other than 0/1 is rejected with its index."""
    bad = ~np.isin(event, (0.0, 1.0))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}: value {float(event[i])!r} at index {i} is not 0/1 "
                         f"({int(bad.sum())} such value(s))")
    return event.astype(bool)


def check_nonnegative(values: np.ndarray, name: str) -> None:
    """Reject negative entries (scores, times) with the first offending index."""
    bad = values < 0
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise InputError(f"{name}: value {float(values[i])!r} at index {i} is negative "
                         f"({int(bad.sum())} such value(s))")


def finite_weights(weights: np.ndarray, *arrays: np.ndarray) -> tuple[np.ndarray, tuple[np.ndarray, ...]]:
    """Zero the resampling weight of rows with a missing value; zero-fill those values."""
    keep = np.logical_and.reduce([np.isfinite(a) for a in arrays])
    cleaned = tuple(np.where(keep, a, 0.0) for a in arrays)
    return weights * keep, cleaned


def safe_divide(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """Elementwise num/den with NaN where den is 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
