"""Exceptions shared by every module.

Any error caused by the user's input (a bad manifest, an unreadable image, a bad
config) derives from :class:`InputError`; the CLI turns it into a message and
exit code 2, so nothing downstream has to know about exit codes.

Warnings the library raises derive from :class:`RaoutcomeWarning`, one subclass per kind, so a
user can filter them (``warnings.simplefilter("ignore", raoutcome.errors.RegionFallbackWarning)``).
"""
from __future__ import annotations

__all__ = ["InputError", "Problem", "CohortValidationError", "ImageReadError", "ConfigError",
           "RaoutcomeWarning", "NotCrossFittedWarning", "RegionFallbackWarning", "AnalysisSkippedWarning"]

from dataclasses import dataclass


class InputError(Exception):
    """Bad user input: the CLI prints the message and exits with code 2."""


@dataclass(frozen=True)
class Problem:
    """One problem found in user input, located as precisely as possible.

    Examples
    --------
    >>> str(Problem("visits.csv", "not a number", row=3, column="time_years", value="x"))
    "visits.csv, row 3, column 'time_years': not a number (value: 'x')"
    """

    file: str
    message: str
    row: int | None = None  # 1-based data row (header excluded), as a spreadsheet user counts
    column: str | None = None
    value: object = None

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column is not None:
            where += f", column '{self.column}'"
        val = "" if self.value is None else f" (value: {self.value!r})"
        return f"{where}: {self.message}{val}"


class CohortValidationError(InputError):
    """A cohort failed validation; carries every problem found, not just the first."""

    def __init__(self, problems: list[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(f"cohort is invalid ({len(self.problems)} problem(s)):\n{lines}")

    def __reduce__(self):
        # Exception pickles as cls(*self.args), and args holds the formatted message, not
        # the problems: rebuild from the problems (so a worker's error arrives intact).
        return (type(self), (self.problems,), self.__dict__)


class ImageReadError(InputError):
    """An image file could not be read or decoded; the message names the file."""


class ConfigError(InputError):
    """A TOML config is missing a key or holds a bad value."""


class RaoutcomeWarning(UserWarning):
    """Base class of every warning raoutcome raises (filter them all with this one)."""


class NotCrossFittedWarning(RaoutcomeWarning):
    """Image scores were (possibly) produced by a model that saw the same patients."""


class RegionFallbackWarning(RaoutcomeWarning):
    """An image has neither a truth region map nor landmarks: regions are foreground/background only."""


class AnalysisSkippedWarning(RaoutcomeWarning, RuntimeWarning):
    """One analysis could not run on this data (too few events, a singular design) and was skipped."""
