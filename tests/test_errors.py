"""Every error in raoutcome.errors survives pickling (raised in a worker process, re-raised in the parent)."""
from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor

import pytest

from raoutcome import errors
from raoutcome.errors import CohortValidationError, ConfigError, ImageReadError, InputError, Problem

PROBLEMS = [Problem("visits.csv", "not a number", row=3, column="haq", value="x"),
            Problem("images.csv", "file not found", row=1, column="path", value="images/a.png"),
            Problem("cohort", "no patients")]


def _instances():
    return [InputError("bad input"), ImageReadError("images/a.png: not a DICOM or PNG"),
            ConfigError("train.toml: [model] lr must be > 0 (value: -1)"),
            CohortValidationError(PROBLEMS)]


def test_every_error_class_is_covered():
    classes = {obj for obj in vars(errors).values()
               if isinstance(obj, type) and issubclass(obj, BaseException) and not issubclass(obj, Warning)}
    assert classes == {type(e) for e in _instances()}


@pytest.mark.parametrize("err", _instances(), ids=lambda e: type(e).__name__)
def test_error_round_trips_through_pickle(err):
    err.hint = "extra attribute"
    back = pickle.loads(pickle.dumps(err))
    assert type(back) is type(err)
    assert str(back) == str(err) and back.args == err.args
    assert back.hint == "extra attribute"
    if isinstance(err, CohortValidationError):
        assert back.problems == PROBLEMS
        assert "3 problem(s)" in str(back) and "visits.csv, row 3, column 'haq'" in str(back)


def test_problem_round_trips_through_pickle():
    assert pickle.loads(pickle.dumps(PROBLEMS)) == PROBLEMS


def _raise_validation_error(_):
    raise CohortValidationError(PROBLEMS[:1])


def test_cohort_validation_error_raised_in_a_worker_reaches_the_parent():
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("fork")) as pool:
        with pytest.raises(CohortValidationError) as info:
            pool.submit(_raise_validation_error, None).result()
    assert info.value.problems == PROBLEMS[:1]
    assert str(info.value).startswith("cohort is invalid (1 problem(s)):")
