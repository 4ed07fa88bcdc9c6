"""``simulate_spine()``: an ankylosing spondylitis cohort of lateral cervical and lumbar radiographs, with truth.

The generative model is :mod:`.spine_course`; images come from :mod:`.phantom.spine`. The folder is a
cohort manifest (``docs/manifest.md``) plus ``truth/``:

* ``patients.csv``: ``patient_id, sex, age, age_at_diagnosis, disease_duration_years``
* ``visits.csv``: ``patient_id, visit_id, time_years, msasss`` (reading 1, missing corners imputed within
  their segment, :func:`raoutcome.msasss.msasss_total`), ``basfi``, ``basdai``
* ``images.csv`` (views ``spine_cervical``, ``spine_lumbar``; 16-bit PNG), ``landmarks.csv`` (the scored
  anterior corners and the centre of each vertebra, :func:`raoutcome.msasss.landmark_names`)
* ``joints.csv``: reading 1 per scorable corner, ``kind = msasss``, ``joint = spine_cervical:C3_sup``;
  a corner of an imaged view with no row on that visit was read as not scorable
* ``retest_joints.csv`` / ``retest.csv``: an independent second reading (its own random stream)
* ``events.csv``: ``new_bridge`` found at the visit that shows it (``time_lower``/``time_upper``)
* ``reimaged/`` (config ``reimage`` > 0: that share of the patients): every visit of those patients imaged a
  second time (a new acquisition, :mod:`.spine_course`) and read once more, as a cohort folder of its own
  (``patients, visits`` (``msasss`` of that reading), ``images, landmarks, joints, events`` (empty),
  ``truth/corners.csv``): the test-retest films for the SDC of a score computed from the images
* ``truth/corners.csv``: per image and corner the true grade, lesion, whether scorable and why not;
  ``truth/visits.csv``: true totals (all 24 corners, no missing), BASFI/BASDAI means, activity, lordosis;
  ``truth/patients.csv``: sex, ages, log rate, the true time of the first new bridge; ``truth/regions/``.
"""
from __future__ import annotations

__all__ = ["simulate_spine", "SPINE_COLUMNS", "REIMAGED", "REIMAGED_COLUMNS"]

import json
import os
import shutil
from pathlib import Path

import numpy as np

from raoutcome.errors import ConfigError, InputError
from raoutcome.msasss import CORNERS, NEW_BRIDGE_EVENT, level_of, msasss_total
from raoutcome.io_utils import replace_folder
from .observation import detect_at_visits
from .phantom.render import Acquisition
from .phantom.spine import SpineState, render_spine_view
from .spine_course import SpineCohortConfig, draw_course, load_spine_config, read_corners
from .writer import TableWriter, write_labels, write_png16

MARKER = "truth/simulation.json"
SPINE_COLUMNS: dict[str, list[str]] = {
    "patients": ["patient_id", "sex", "age", "age_at_diagnosis", "disease_duration_years"],
    "visits": ["patient_id", "visit_id", "time_years", "msasss", "basfi", "basdai"],
    "images": ["patient_id", "visit_id", "view", "path"],
    "events": ["patient_id", "event", "time_years", "observed", "time_lower", "time_upper"],
    "joints": ["patient_id", "visit_id", "joint", "kind", "score"],
    "retest": ["patient_id", "visit_id", "msasss"],
    "retest_joints": ["patient_id", "visit_id", "joint", "kind", "score"],
    "landmarks": ["path", "landmark", "x", "y"],
    "truth/patients": ["patient_id", "sex", "male", "age", "age_at_diagnosis", "disease_duration_years",
                       "activity", "log_rate", "lordosis", "shoulder", "first_new_bridge_true", "censor_time"],
    "truth/visits": ["patient_id", "visit_id", "time_years", "msasss_true", "msasss_cervical_true",
                     "msasss_lumbar_true", "bridges_true", "basfi_mean", "basdai_mean", "activity"],
    "truth/corners": ["patient_id", "visit_id", "view", "joint", "corner", "grade", "lesion", "scorable",
                      "reason", "read1", "read2"],
}
REIMAGED = "reimaged/"  # the re-imaged visits: a cohort folder of their own inside the cohort
REIMAGED_COLUMNS: dict[str, list[str]] = {
    REIMAGED + k: SPINE_COLUMNS[k] for k in ("patients", "images", "events", "joints", "landmarks", "truth/corners")}
REIMAGED_COLUMNS[REIMAGED + "visits"] = ["patient_id", "visit_id", "time_years", "msasss"]


def _round(x: float, step: float = 0.1) -> float:
    return float(np.round(x / step) * step)


def _patient(cfg: SpineCohortConfig, index: int, seq: np.random.SeedSequence, root: Path) -> dict[str, list]:
    pid = f"P{index + 1:04d}"
    s_course, s_out, s_img, s_read, s_retest, s_drop = seq.spawn(6)
    pc = draw_course(cfg, np.random.default_rng(s_course))
    r_out, r_img = np.random.default_rng(s_out), np.random.default_rng(s_img)
    r_read, r_retest = np.random.default_rng(s_read), np.random.default_rng(s_retest)
    r_drop = np.random.default_rng(s_drop)
    # re-imaging has its own stream (spawn key 101), so a cohort's first films do not depend on it
    r_reimage = np.random.default_rng(np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 101)))
    reimaged = cfg.render and cfg.reimage > 0 and bool(r_reimage.random() < cfg.reimage)
    o = cfg.outcomes
    # follow-up: random loss to follow-up and missed visits
    censor = r_drop.exponential(1.0 / o.dropout_rate) if o.dropout_rate > 0 else np.inf
    keep = np.ones(len(pc.times), bool)
    keep[1:] = (pc.times[1:] <= censor) & (r_drop.random(len(pc.times) - 1) >= cfg.visits.dropout)
    times = pc.times[keep]
    grades = pc.grades[keep]
    lesions = [pc.lesions[i] for i in np.flatnonzero(keep)]
    V = len(times)
    sex = "M" if pc.male else "F"
    age = pc.age_at_diagnosis + pc.duration
    rows: dict[str, list] = {k: [] for k in {**SPINE_COLUMNS, **REIMAGED_COLUMNS}}
    first_bridge = pc.bridge_times[0] if pc.bridge_times else float("nan")
    rows["patients"].append(dict(patient_id=pid, sex=sex, age=round(age, 1),
                                 age_at_diagnosis=round(pc.age_at_diagnosis, 1),
                                 disease_duration_years=round(pc.duration, 2)))
    if reimaged:
        rows[f"{REIMAGED}patients"].append(dict(rows["patients"][-1]))
    found = detect_at_visits(first_bridge if np.isfinite(first_bridge) else np.inf, times) if V > 1 else None
    if found is not None:
        rows["events"].append(dict(patient_id=pid, event=NEW_BRIDGE_EVENT, time_years=round(found.time, 4),
                                   observed=found.observed, time_lower=round(found.lower, 4),
                                   time_upper=round(found.upper, 4) if found.observed else float("nan")))
    rows["truth/patients"].append(dict(
        patient_id=pid, sex=sex, male=int(pc.male), age=age, age_at_diagnosis=pc.age_at_diagnosis,
        disease_duration_years=pc.duration, activity=pc.activity, log_rate=pc.log_rate, lordosis=pc.lordosis,
        shoulder=pc.shoulder, first_new_bridge_true=first_bridge, censor_time=float(min(censor, 1e6))))

    views = cfg.views
    local = [k.split(":", 1)[1] for k in pc.corners]
    view_of = [k.split(":", 1)[0] for k in pc.corners]
    for v in range(V):
        vid = f"v{v}"
        t = float(times[v])
        a_visit = pc.activity + float(r_out.normal(0, 0.5))
        g = grades[v]
        true_total = int(g.sum())
        basfi_m = o.basfi_intercept + o.basfi_damage * true_total / 10.0 + o.basfi_activity * a_visit
        basdai_m = o.basdai_intercept + o.basdai_activity * a_visit
        basfi = _round(float(np.clip(basfi_m + r_out.normal(0, o.basfi_noise_sd), 0, 10)))
        basdai = _round(float(np.clip(basdai_m + r_out.normal(0, o.basdai_noise_sd), 0, 10)))
        # images (their non-scorable corners decide what the readers can score)
        reason = {k: ("osteophyte" if k in pc.osteophytes else "") for k in local}
        imaged = set()
        for view in views:
            drawn = _image(cfg, pc, view, g, lesions[v], true_total, reason, int(r_img.integers(0, 2**63)))
            if drawn is None:
                continue
            imaged.add(view)
            _write_image(root, rows, "", f"{pid}_{vid}_{view}", pid, vid, view, *drawn)
        scorable = np.array([not reason[k] for k in local])
        read1 = read_corners(g, scorable, cfg, r_read)
        read2 = read_corners(g, scorable, cfg, r_retest)
        n_c = len(CORNERS["spine_cervical"]) if "spine_cervical" in views else 0
        tot1 = float(msasss_total(read1[:n_c], read1[n_c:])) if len(views) == 2 else float("nan")
        tot2 = float(msasss_total(read2[:n_c], read2[n_c:])) if len(views) == 2 else float("nan")
        rows["visits"].append(dict(patient_id=pid, visit_id=vid, time_years=round(t, 4),
                                   msasss=round(tot1, 3), basfi=basfi, basdai=basdai))
        rows["retest"].append(dict(patient_id=pid, visit_id=vid, msasss=round(tot2, 3)))
        cerv = [i for i in range(len(local)) if view_of[i] == "spine_cervical"]
        lumb = [i for i in range(len(local)) if view_of[i] == "spine_lumbar"]
        rows["truth/visits"].append(dict(
            patient_id=pid, visit_id=vid, time_years=t, msasss_true=true_total,
            msasss_cervical_true=int(g[cerv].sum()), msasss_lumbar_true=int(g[lumb].sum()),
            bridges_true=int((g == 3).sum() // 2), basfi_mean=basfi_m, basdai_mean=basdai_m, activity=a_visit))
        for i, k in enumerate(local):
            joint = pc.corners[i]
            rows["truth/corners"].append(dict(
                patient_id=pid, visit_id=vid, view=view_of[i], joint=joint, corner=k, grade=int(g[i]),
                lesion=lesions[v].get(k, "none"), scorable=int(scorable[i]), reason=reason[k],
                read1=read1[i], read2=read2[i]))
            if view_of[i] not in imaged and cfg.render:
                continue
            if np.isfinite(read1[i]):
                rows["joints"].append(dict(patient_id=pid, visit_id=vid, joint=joint, kind="msasss",
                                           score=int(read1[i])))
            if np.isfinite(read2[i]):
                rows["retest_joints"].append(dict(patient_id=pid, visit_id=vid, joint=joint, kind="msasss",
                                                  score=int(read2[i])))
        if reimaged:
            _reimage_visit(cfg, pc, root, rows, pid, vid, t, g, lesions[v], true_total, r_reimage)
    return rows


def _image(cfg: SpineCohortConfig, pc, view: str, g: np.ndarray, lesions: dict[str, str], true_total: int,
           reason: dict[str, str], acq_seed: int):
    """Draw one acquisition of ``view`` (blurred corners, pose, shoulders, exposure) and render it; marks the
    corners it cannot show in ``reason``. Returns (pixels, label map, in-film landmarks) or None (not rendered)."""
    c = cfg.course
    local = [k.split(":", 1)[1] for k in pc.corners]
    view_of = [k.split(":", 1)[0] for k in pc.corners]
    rng = np.random.default_rng(acq_seed)
    blurred = frozenset(k for k in CORNERS[view] if rng.random() < c.blurred and not reason[k])
    for k in blurred:
        reason[k] = "blurred"
    st = SpineState(
        grades={k: int(g[i]) for i, k in enumerate(local) if view_of[i] == view},
        lesions={k: les for k, les in lesions.items() if k in CORNERS[view]},
        osteophytes=frozenset(k for k in pc.osteophytes if k in CORNERS[view]), blurred=blurred,
        lordosis=pc.lordosis * (1.0 - 0.4 * true_total / 72.0), tilt=float(rng.normal(0, 0.06)),
        size=(1.04 if pc.male else 0.96) * float(rng.normal(1.0, 0.02)),
        shoulder=pc.shoulder + float(rng.normal(0, 0.05)),
        jitter=tuple(rng.normal(1.0, 0.04, 7)))
    acq = Acquisition.draw(rng, cfg.acquisition, mirror=False)
    if not cfg.render:
        return None
    img, label, lms, hidden = render_spine_view(view, st, cfg.image_size, acq, rng)
    for k in hidden:
        reason[k] = reason[k] or "hidden"
    edge = cfg.image_size - 0.5
    inside = {k: -0.5 <= x <= edge and -0.5 <= y <= edge for k, (x, y) in lms.items()}
    for k in CORNERS[view]:  # a corner (or its vertebra's centre) off the film cannot be scored
        if not (inside[k] and inside[f"{level_of(k)}_c"]):
            reason[k] = reason[k] or "outside"
    return img, label, {k: xy for k, xy in lms.items() if inside[k]}


def _write_image(root: Path, rows: dict[str, list], prefix: str, stem: str, pid: str, vid: str, view: str,
                 img: np.ndarray, label: np.ndarray, lms: dict[str, tuple[float, float]]) -> None:
    """Write one film (and its label map) under ``root/prefix`` and its manifest rows (tables ``prefix*``)."""
    base = root / prefix if prefix else root
    rel = f"images/{pid}/{stem}.png"
    (base / "images" / pid).mkdir(parents=True, exist_ok=True)
    (base / "truth" / "regions").mkdir(parents=True, exist_ok=True)
    write_png16(base / rel, img)
    write_labels(base / "truth" / "regions" / f"{stem}.png", label)
    rows[f"{prefix}images"].append(dict(patient_id=pid, visit_id=vid, view=view, path=rel))
    rows[f"{prefix}landmarks"].extend(dict(path=rel, landmark=k, x=round(x, 2), y=round(y, 2))
                                      for k, (x, y) in lms.items())


def _reimage_visit(cfg: SpineCohortConfig, pc, root: Path, rows: dict[str, list], pid: str, vid: str, t: float,
                   g: np.ndarray, lesions: dict[str, str], true_total: int, rng: np.random.Generator) -> None:
    """The visit imaged again (new acquisitions of every view, same spine) and that film read again, into the
    ``reimaged/`` cohort: a test-retest pair for the SDC of a score computed from the films."""
    p = REIMAGED
    local = [k.split(":", 1)[1] for k in pc.corners]
    reason = {k: ("osteophyte" if k in pc.osteophytes else "") for k in local}
    imaged = set()
    for view in cfg.views:
        drawn = _image(cfg, pc, view, g, lesions, true_total, reason, int(rng.integers(0, 2**63)))
        if drawn is None:
            continue
        imaged.add(view)
        _write_image(root, rows, p, f"{pid}_{vid}_{view}_retest", pid, vid, view, *drawn)
    scorable = np.array([not reason[k] for k in local])
    read = read_corners(g, scorable, cfg, rng)
    n_c = len(CORNERS["spine_cervical"]) if "spine_cervical" in cfg.views else 0
    total = float(msasss_total(read[:n_c], read[n_c:])) if len(cfg.views) == 2 else float("nan")
    rows[f"{p}visits"].append(dict(patient_id=pid, visit_id=vid, time_years=round(t, 4), msasss=round(total, 3)))
    for i, k in enumerate(local):
        view = pc.corners[i].split(":", 1)[0]
        rows[f"{p}truth/corners"].append(dict(
            patient_id=pid, visit_id=vid, view=view, joint=pc.corners[i], corner=k, grade=int(g[i]),
            lesion=lesions.get(k, "none"), scorable=int(scorable[i]), reason=reason[k], read1=read[i],
            read2=float("nan")))
        if view in imaged and np.isfinite(read[i]):
            rows[f"{p}joints"].append(dict(patient_id=pid, visit_id=vid, joint=pc.corners[i], kind="msasss",
                                           score=int(read[i])))


def simulate_spine(config_path=None, out_dir="as_cohort", seed: int | None = None, *,
                   config: SpineCohortConfig | None = None) -> Path:
    """Simulate an AS spine cohort into ``out_dir``; returns the folder (built beside it, renamed at the end).

    Raises :class:`ConfigError` for bad config values, :class:`InputError` when ``out_dir`` holds something
    other than a previous simulation."""
    cfg = config if config is not None else load_spine_config(config_path)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"config key 'seed': must be a non-negative integer (value: {seed!r})")
        cfg = cfg.replace(seed=int(seed))
    out = Path(out_dir)
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise InputError(f"refusing to write into {out}: it exists, is not empty and is not a previous "
                         f"simulation output (no {MARKER}); choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "truth" / "regions").mkdir(parents=True)
    try:
        columns = {**SPINE_COLUMNS, **(REIMAGED_COLUMNS if cfg.render and cfg.reimage > 0 else {})}
        tables = TableWriter(tmp, columns)
        try:
            for i, s in enumerate(np.random.SeedSequence(cfg.seed).spawn(cfg.n_patients)):
                for name, r in _patient(cfg, i, s, tmp).items():
                    if name in columns:
                        tables.write(name, r)
        finally:
            tables.close()
        from raoutcome import config as _config

        resolved = _config.to_dict(cfg)
        resolved.pop("workers", None)
        (tmp / MARKER).write_text(json.dumps({"generator": "raoutcome.synth.spine", "config": resolved},
                                             indent=2, sort_keys=True))
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out
