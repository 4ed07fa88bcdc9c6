"""How a clinic observes an event: at visits, between the last visit without it and the first with it.

A deformity is found on a radiograph, so an event that truly happens at time T is known only to lie in
``(last attended visit before T, first attended visit at or after T]``: interval censoring. A patient
whose follow-up (death, loss to follow-up, end of study) ends before a visit shows the event is
right-censored at the last attended visit. The exact T stays in the simulator's ``truth/``.

References: Sun J, The Statistical Analysis of Interval-censored Failure Time Data, Springer 2006, ch. 1;
Lindsey JC, Ryan LM, Tutorial in biostatistics: methods for interval-censored data, Stat Med 1998;17:219-38.
"""
from __future__ import annotations

__all__ = ["Detection", "detect_at_visits"]

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Detection:
    """What the clinic records: the time it writes down, whether the event was seen, and the interval.

    ``observed`` 1: ``lower < T <= upper`` and ``time = upper`` (the visit that showed it);
    ``observed`` 0: ``time = lower`` (last visit seen without it) and ``upper = inf``.
    """

    time: float
    observed: int
    lower: float
    upper: float


def detect_at_visits(event_time: float, visit_times: np.ndarray) -> Detection:
    """Interval in which the attended visits ``visit_times`` (increasing, first at 0) place ``event_time``.

    Only visits the patient attended count (drop those after death or loss to follow-up before calling).
    """
    visits = np.asarray(visit_times, float)
    if visits.ndim != 1 or len(visits) == 0 or np.any(np.diff(visits) <= 0):
        raise ValueError("visit_times: need at least one strictly increasing visit time")
    after = np.flatnonzero(visits >= event_time)
    if len(after) == 0 or after[0] == 0:
        if len(after) and event_time <= visits[0]:
            raise ValueError(f"event time {event_time!r} is not after the first visit ({visits[0]!r})")
        return Detection(time=float(visits[-1]), observed=0, lower=float(visits[-1]), upper=float("inf"))
    k = int(after[0])
    return Detection(time=float(visits[k]), observed=1, lower=float(visits[k - 1]), upper=float(visits[k]))
