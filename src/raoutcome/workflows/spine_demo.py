"""``raoutcome msasss demo``: the AS study end to end from one command, on simulated cohorts.

Four stages, each kept in ``out`` and skipped when its output is there (``force`` reruns them):

1. ``train_cohort/``: a simulated AS cohort (:func:`raoutcome.synth.spine_cohort.simulate_spine`, seed ``seed``)
   whose per-corner human reading (``joints.csv``, a noisy reader, not the truth) trains the reader;
2. ``study_cohort/``: another cohort (seed ``seed + 1``, other patients) with every visit imaged twice
   (``reimage = 1``: its ``reimaged/`` folder) and read twice (``retest.csv``), for the SDCs;
3. ``corner_reader.pt``: the corner reader (:func:`raoutcome.training.corner_train.fit_corner_reader`) trained on
   the training cohort's annotated landmarks;
4. ``study/``: :func:`raoutcome.workflows.spine_study.run_spine_study` on the study cohort: mSASSS change,
   SRM and SDC of the human and of the learned change score on the same patients, power of a trial of
   ``trial_n`` per arm, per-corner confusion matrix and per-lesion accuracy against the simulation's truth,
   BASFI / BASDAI / time to a new bridge against the learned and the human mSASSS (printed in short),
   ``study/report.html``.

The cohorts are small (a few minutes on two CPU cores); the figures it prints illustrate the machinery, the
reported ones come from ``analyses/spine_check.py`` (docs/spine.md).
"""
from __future__ import annotations

__all__ = ["run_spine_demo"]

from pathlib import Path
from typing import Callable

from raoutcome.errors import ConfigError


def run_spine_demo(out: str | Path, *, config: str | Path | None = None, train_patients: int = 40,
                   study_patients: int = 40, epochs: int = 10, seed: int = 24101, trial_n: int = 100,
                   effect: float = 0.5, force: bool = False, log: Callable[[str], None] | None = print) -> Path:
    """Simulate, train, read and report (see the module docstring); returns the report's path.

    ``config``: an AS cohort TOML (``cohort = "as_spine"``; None: the built-in defaults, which are
    ``cohorts/as_spine.toml``'s); its ``seed``, ``n_patients`` and ``reimage`` are set here."""
    from raoutcome.cohort import load
    from raoutcome.imaging.corner_patches import cohort_corner_patches, corner_targets
    from raoutcome.synth.spine_cohort import simulate_spine
    from raoutcome.synth.spine_course import load_spine_config
    from raoutcome.training.corner_train import fit_corner_reader, save_corner_reader
    from raoutcome.workflows.spine_study import run_spine_study

    for name, n in (("train_patients", train_patients), ("study_patients", study_patients), ("epochs", epochs)):
        if n < 1:
            raise ConfigError(f"{name} must be a positive integer (value: {n!r})")
    say = log or (lambda _msg: None)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    base = load_spine_config(config)
    train, study = out / "train_cohort", out / "study_cohort"
    if force or not (train / "truth" / "simulation.json").is_file():
        say(f"simulating the training cohort ({train_patients} patients, seed {seed})")
        simulate_spine(out_dir=train, config=base.replace(seed=seed, n_patients=train_patients, reimage=0.0))
    if force or not (study / "truth" / "simulation.json").is_file():
        say(f"simulating the study cohort ({study_patients} patients, seed {seed + 1}, every visit imaged twice)")
        simulate_spine(out_dir=study, config=base.replace(seed=seed + 1, n_patients=study_patients, reimage=1.0))
    reader = out / "corner_reader.pt"
    if force or not reader.is_file():
        say(f"training the corner reader ({epochs} epochs)")
        cohort = load(train, images=True)
        patches = cohort_corner_patches(cohort)
        grade, scorable = corner_targets(patches.table, cohort.joints)
        fit = fit_corner_reader(patches, grade, scorable, epochs=epochs, seed=seed, log=log)
        save_corner_reader(fit.model, reader)
    say("reading the study cohort and its re-imaged films")
    folder = run_spine_study(study, reader, out / "study", trial_n=trial_n, effect=effect, seed=seed)
    from raoutcome.workflows.spine_outcomes import outcome_summary

    for line in outcome_summary(folder):
        say(line)
    return folder / "report.html"
