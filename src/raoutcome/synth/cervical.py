"""The RA cervical cohort simulator: craniocervical deformity over years, found at follow-up visits.

Per patient (own ``SeedSequence`` child, so a patient's draw does not depend on the others):

* baseline latents from a cervical inflammatory activity ``a ~ N(0, 1)`` (seen at baseline through its
  effects) and an unseen frailty ``z ~ N(0, 1)``: retro-odontoid pannus ``P0`` (mm), facet degeneration
  ``F0`` (0–1), dens erosion ``E0`` (0–1), ligament laxity ``L0`` (mm of extra ADI in flexion);
* a progression multiplier ``m = exp(mu + b_a a + b_z z + b_rf RF)``; the latents grow linearly,
  ``P(t) = P0 + 0.30 m t``, ``F(t) = F0 + 0.05 m t``, ``E`` and ``L`` likewise;
* the **deformity** (seeds/004: pannus and/or facet degeneration at C0–C1 / C1–C2, definite on MRI) is
  the first time ``P(t) >= 3 mm`` or ``F(t) >= 0.6``: ``T = min((3 - P0) / rP, (0.6 - F0) / rF)``; nobody
  has it at baseline (``P0``, ``F0`` are drawn below the thresholds, as the seed excluded baseline
  deformity);
* ADI grows with pannus and laxity (``ADI = ADI0 + 0.3 P + 0.3 L``), the C1 ring settles as the facets
  collapse (vertical translocation ``vt = 6 max(0, F - 0.5)``);
* death (the competing event) from US life tables x SMR 1.5 (:mod:`raoutcome.synth.mortality`), random
  loss to follow-up (exponential); visits on a schedule with jitter; the deformity is found at the first
  attended visit at or after ``T`` (interval-censored, :func:`raoutcome.synth.observation.detect_at_visits`).

``mu`` is set so that about 15 % of patients have the deformity found by the 3-year visit (seeds/004:
33 of 220 over >= 3 years; a test checks the rate). Images: lateral radiographs (neutral, flexion,
extension; DICOM DX with pixel spacing) and sagittal T1/T2 MR volumes (NIfTI, canonical P, I, L frame)
from :mod:`raoutcome.synth.phantom.craniocervical`, at baseline only or at every visit.

Earlier images (``prior_years``, e.g. ``[-1.5]``): visits before baseline, when the latents were smaller
(the same linear trajectories run backwards, floored at 0), rendered with their own random stream so the
baseline images do not change. They are not part of the manifest (its time origin is the baseline visit and a
visit time is never negative): ``prior_visits.csv`` (``patient_id, visit_id, time_years``, visit ids ``p1``,
``p2``, ... from the earliest) and ``prior_images.csv`` (``patient_id, visit_id, view, path, time_years``); their
true measures are in ``truth/measurements.csv`` and their latents in ``truth/prior_visits.csv``. The
longitudinal model of :mod:`raoutcome.workflows.cervical_predict` reads them.
"""
from __future__ import annotations

__all__ = ["CervicalConfig", "load_cervical_config", "draw_patient", "cohort_tables", "simulate_cervical",
           "DEFORMITY_THRESHOLDS"]

import dataclasses
import datetime as dt
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd

from raoutcome.errors import ConfigError, InputError
from raoutcome.io_utils import replace_folder
from .mortality import draw_death_time
from .observation import detect_at_visits
from .writer import write_labels
from .phantom.craniocervical import (LANDMARKS, MR_CONTRASTS, XR_VIEWS, CervicalGeometry, XrAcquisition,
                                     measures_mm, render_lateral, render_mr, sagittal_direction)

DEFORMITY_THRESHOLDS = {"pannus": 3.0, "facet": 0.6}
MARKER = "truth/simulation.json"


@dataclass(frozen=True)
class CervicalConfig:
    """Simulator settings (the ``[simulation]`` table of ``cohorts/ra_cervical.toml``)."""

    n_patients: int = 220
    seed: int = 0
    visit_years: tuple[float, ...] = (0.0, 1.5, 3.0, 4.5, 6.0)
    visit_jitter_years: float = 0.1
    rate_log_mean: float = -0.85     # mu: sets the deformity rate (~15 % found by the 3-year visit)
    rate_activity: float = 0.75      # b_a: visible activity -> faster progression
    rate_frailty: float = 1.0        # b_z: unseen (sets the ceiling of any baseline-image model)
    rate_rf: float = 0.25            # b_rf: rheumatoid factor
    death_smr: float = 1.5
    loss_per_year: float = 0.03
    age_mean: float = 58.0
    age_sd: float = 11.0
    render: str = "baseline"          # "baseline" | "all" | "none"
    xr_views: tuple[str, ...] = XR_VIEWS
    xr_size: int = 128
    xr_spacing_mm: float = 0.55
    mr_contrasts: tuple[str, ...] = MR_CONTRASTS
    mr_shape: tuple[int, int, int] = (12, 48, 48)
    mr_spacing_mm: tuple[float, float, float] = (3.5, 1.4, 1.4)
    prior_years: tuple[float, ...] = ()  # visits before baseline with images (negative years, increasing)
    extra: dict = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.n_patients < 1:
            raise ConfigError(f"simulation.n_patients: must be >= 1 (value: {self.n_patients!r})")
        if self.render not in ("baseline", "all", "none"):
            raise ConfigError(f"simulation.render: must be baseline, all or none (value: {self.render!r})")
        v = np.asarray(self.visit_years, float)
        if len(v) < 2 or v[0] != 0 or np.any(np.diff(v) <= 2 * self.visit_jitter_years):
            raise ConfigError(f"simulation.visit_years: must start at 0 and increase by more than twice the "
                              f"jitter (value: {list(self.visit_years)!r})")
        pr = np.asarray(self.prior_years, float)
        if len(pr) and (np.any(pr >= -2 * self.visit_jitter_years) or np.any(np.diff(pr) <= 2 * self.visit_jitter_years)):
            raise ConfigError(f"simulation.prior_years: must be negative (before baseline by more than twice the "
                              f"jitter) and increase by more than twice the jitter (value: {list(self.prior_years)!r})")
        bad = [x for x in self.xr_views if x not in XR_VIEWS]
        if bad:
            raise ConfigError(f"simulation.xr_views: unknown {bad} (expected some of {list(XR_VIEWS)})")
        bad = [x for x in self.mr_contrasts if x not in MR_CONTRASTS]
        if bad:
            raise ConfigError(f"simulation.mr_contrasts: unknown {bad} (expected some of {list(MR_CONTRASTS)})")


def load_cervical_config(source: str | Path | Mapping[str, Any] | None = None, **overrides) -> CervicalConfig:
    """A :class:`CervicalConfig` from a TOML file (its ``[simulation]`` table), a mapping, or defaults;
    unknown keys are refused with their names."""
    from raoutcome.config import from_dict, read_toml

    raw: dict[str, Any] = {}
    where = "<config>"
    if isinstance(source, (str, Path)):
        where = str(source)
        raw = dict(read_toml(source, "cervical study config").get("simulation", {}))
    elif source is not None:
        raw = dict(source)
    raw.update({k: v for k, v in overrides.items() if v is not None})
    return from_dict(CervicalConfig, raw, where, prefix="simulation.")


# --------------------------------------------------------------------------- one patient
def draw_patient(cfg: CervicalConfig, index: int, seq: np.random.SeedSequence) -> dict[str, Any]:
    """Latents, trajectories, visits and events of one patient (no pixels)."""
    # a 7th child for the earlier visits: the first six (and every earlier draw) stay as they were
    s_base, s_rate, s_death, s_loss, s_visit, s_img, s_prior = (np.random.default_rng(s) for s in seq.spawn(7))
    a, e = s_base.normal(), s_base.normal(size=6)
    female = bool(s_base.random() < 0.72)
    rf = int(s_base.random() < 0.7)
    age = float(np.clip(s_base.normal(cfg.age_mean, cfg.age_sd), 25, 85))
    p0 = float(np.clip(0.9 + 0.55 * a + 0.35 * e[0], 0.0, DEFORMITY_THRESHOLDS["pannus"] - 0.3))
    f0 = float(np.clip(0.22 + 0.10 * a + 0.07 * e[1], 0.0, DEFORMITY_THRESHOLDS["facet"] - 0.05))
    e0 = float(np.clip(0.15 + 0.12 * a + 0.10 * e[2], 0.0, 1.0))
    l0 = float(0.5 * np.exp(0.3 * a + 0.3 * e[3]))
    z = s_rate.normal()
    m = float(np.exp(cfg.rate_log_mean + cfg.rate_activity * a + cfg.rate_frailty * z + cfg.rate_rf * rf))
    rates = {"pannus": 0.30 * m, "facet": 0.05 * m, "erosion": 0.05 * m, "laxity": 0.15 * m}
    t_true = float(min((DEFORMITY_THRESHOLDS["pannus"] - p0) / rates["pannus"],
                       (DEFORMITY_THRESHOLDS["facet"] - f0) / rates["facet"]))
    anat = dict(dens_w=float(s_base.normal(10.0, 0.7)), adi0=float(np.clip(s_base.normal(1.3, 0.35), 0.5, 2.4)),
                canal=float(s_base.normal(30.5, 1.8)), gap0=float(np.clip(s_base.normal(2.5, 0.25), 1.8, 3.2)),
                bdi0=float(np.clip(s_base.normal(7.0, 1.2), 4.0, 10.0)))
    death = draw_death_time(age, female, cfg.death_smr, s_death)
    loss = float(s_loss.exponential(1 / cfg.loss_per_year)) if cfg.loss_per_year > 0 else float("inf")
    sched = np.asarray(cfg.visit_years, float)
    times = sched + np.r_[0.0, s_visit.uniform(-cfg.visit_jitter_years, cfg.visit_jitter_years, len(sched) - 1)]
    attended = times[(times <= min(death, loss)) | (np.arange(len(times)) == 0)]
    found = detect_at_visits(t_true, attended)
    prior = np.asarray(cfg.prior_years, float)
    prior_times = prior + s_prior.uniform(-cfg.visit_jitter_years, cfg.visit_jitter_years, len(prior))
    pid = f"C{index + 1:04d}"
    return dict(patient_id=pid, a=float(a), z=float(z), female=female, rf=rf, age=age, p0=p0, f0=f0, e0=e0,
                l0=l0, m=m, rates=rates, t_true=t_true, death=float(death), loss=loss, times=attended,
                found=found, anat=anat, prior_times=prior_times, study_end=float(sched[-1] + cfg.visit_jitter_years), img_seed=int(s_img.integers(0, 2**62)))


def geometry_at(p: Mapping[str, Any], t: float) -> CervicalGeometry:
    """The patient's craniocervical geometry ``t`` years after baseline."""
    r, an = p["rates"], p["anat"]
    pannus = float(np.clip(p["p0"] + r["pannus"] * t, 0.0, 9.0))   # t < 0 (an earlier visit): floored at 0
    facet = float(np.clip(p["f0"] + r["facet"] * t, 0.0, 1.0))
    laxity = float(np.clip(p["l0"] + r["laxity"] * t, 0.0, 8.0))
    return CervicalGeometry(dens_w=an["dens_w"], adi=an["adi0"] + 0.3 * pannus + 0.3 * laxity, canal=an["canal"],
                            gap0=an["gap0"], bdi0=an["bdi0"], pannus=pannus,
                            erosion=float(np.clip(p["e0"] + r["erosion"] * t, 0.0, 1.0)), facet=facet, laxity=laxity,
                            vt=6.0 * max(0.0, facet - 0.5))


def _prior_ids(p: Mapping[str, Any]) -> list[tuple[str, float]]:
    """``(visit_id, time)`` of the earlier visits: ``p1`` the earliest."""
    return [(f"p{i + 1}", float(t)) for i, t in enumerate(p.get("prior_times", ()))]


def _tables(p: Mapping[str, Any]) -> dict[str, list[dict]]:
    pid, found = p["patient_id"], p["found"]
    rows: dict[str, list[dict]] = {"patients": [], "visits": [], "events": [], "truth/patients": [],
                                   "truth/visits": [], "prior_visits": [], "truth/prior_visits": []}
    for vid, t in _prior_ids(p):
        g = geometry_at(p, t)
        rows["prior_visits"].append(dict(patient_id=pid, visit_id=vid, time_years=round(t, 4)))
        rows["truth/prior_visits"].append(dict(patient_id=pid, visit_id=vid, time_years=t, pannus=g.pannus,
                                               facet=g.facet, erosion=g.erosion, laxity=g.laxity, vt=g.vt))
    rows["patients"].append(dict(patient_id=pid, sex="F" if p["female"] else "M", age=round(p["age"], 1), rf=p["rf"]))
    end = float(p["times"][-1])
    rows["events"].append(dict(patient_id=pid, event="deformity", time_years=round(found.time, 4),
                               observed=found.observed, time_lower=round(found.lower, 4),
                               time_upper=round(found.upper, 4) if found.observed else float("nan")))
    followed = max(end, min(p["loss"], p["death"], p["study_end"]))  # death is registered until then
    rows["events"].append(dict(patient_id=pid, event="death", time_years=round(min(p["death"], followed), 4),
                               observed=int(p["death"] <= followed), time_lower=float("nan"),
                               time_upper=float("nan")))
    rows["truth/patients"].append(dict(
        patient_id=pid, activity=p["a"], frailty=p["z"], rate_multiplier=p["m"], pannus_v0=p["p0"], facet_v0=p["f0"],
        erosion_v0=p["e0"], laxity_v0=p["l0"], event_time_true=p["t_true"], death_time_true=p["death"],
        loss_time_true=p["loss"], log_rate=float(np.log(p["m"]))))
    for v, t in enumerate(p["times"]):
        g = geometry_at(p, float(t))
        rows["visits"].append(dict(patient_id=pid, visit_id=f"v{v}", time_years=round(float(t), 4)))
        meas = {view: measures_mm(g.at_view(view)) for view in XR_VIEWS}
        rows["truth/visits"].append(dict(
            patient_id=pid, visit_id=f"v{v}", time_years=float(t), pannus=g.pannus, facet=g.facet,
            erosion=g.erosion, laxity=g.laxity, vt=g.vt, deformity=int(t >= p["t_true"]),
            adi_neutral=meas["neutral"]["adi_mm"], adi_flexion=meas["flexion"]["adi_mm"],
            sac_neutral=meas["neutral"]["sac_mm"], sac_flexion=meas["flexion"]["sac_mm"],
            ranawat=meas["neutral"]["ranawat_mm"], bdi=meas["neutral"]["bdi_mm"],
            redlund_johnell=meas["neutral"]["redlund_johnell_mm"],
            facet_gap=meas["neutral"]["facet_gap_mm"]))
    return rows


def cohort_tables(cfg: CervicalConfig) -> dict[str, pd.DataFrame]:
    """Every table of a cohort without rendering (fast: rate checks, power, tests)."""
    seqs = np.random.SeedSequence(cfg.seed).spawn(cfg.n_patients)
    acc: dict[str, list[dict]] = {}
    for i, s in enumerate(seqs):
        for k, r in _tables(draw_patient(cfg, i, s)).items():
            acc.setdefault(k, []).extend(r)
    return {k: pd.DataFrame(v) for k, v in acc.items()}


# --------------------------------------------------------------------------- images
def _write_xr(path: Path, img: np.ndarray, *, seed: int, pid: str, vid: str, view: str, spacing: float,
              date: dt.date, sex: str, age: float) -> None:
    """A lateral cervical DX image (synthetic identity only; pixel spacing for mm measurements)."""
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    from .writer import to_uint, uid_prefix

    dx = "1.2.840.10008.5.1.4.1.1.1.1"
    prefix = uid_prefix(seed)
    key = [str(seed), pid, vid]
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = dx
    meta.MediaStorageSOPInstanceUID = sop = generate_uid(prefix, entropy_srcs=key + [view, "image"])
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = prefix + "1"
    ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
    ds.SOPClassUID, ds.SOPInstanceUID = dx, sop
    ds.StudyInstanceUID = generate_uid(prefix, entropy_srcs=key + ["study"])
    ds.SeriesInstanceUID = generate_uid(prefix, entropy_srcs=key + [view, "series"])
    ds.StudyDate = ds.SeriesDate = date.strftime("%Y%m%d")
    ds.Modality, ds.Manufacturer = "DX", "raoutcome synthetic phantom"
    ds.PatientName, ds.PatientID, ds.PatientSex = f"SYNTH^{pid}", pid, sex
    ds.PatientAge = f"{int(age):03d}Y"
    ds.BodyPartExamined, ds.ViewPosition = "CSPINE", "LL"
    ds.SeriesDescription = f"C-SPINE LATERAL {view.split('_')[-1].upper()}"
    ds.PatientOrientation = ["P", "F"]
    ds.PixelSpacing = [f"{spacing:.4f}", f"{spacing:.4f}"]
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.Rows, ds.Columns = img.shape
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.PixelData = to_uint(img, 12).tobytes()
    ds.save_as(path, enforce_file_format=True)


def _write_mr(path: Path, vol: np.ndarray, spacing: tuple[float, float, float]) -> None:
    """NIfTI in the canonical sagittal frame: array ``[slice R->L, row S->I, col A->P]``."""
    import SimpleITK as sitk

    img = sitk.GetImageFromArray(np.round(vol * 1000).astype(np.int16))
    img.SetSpacing((float(spacing[2]), float(spacing[1]), float(spacing[0])))
    img.SetDirection(sagittal_direction())
    sitk.WriteImage(img, str(path), useCompression=True)


def _render_patient(cfg: CervicalConfig, p: Mapping[str, Any], root: Path) -> dict[str, list[dict]]:
    pid = p["patient_id"]
    rows: dict[str, list[dict]] = {"images": [], "landmarks": [], "truth/measurements": [], "prior_images": []}
    rng = np.random.default_rng(p["img_seed"])
    day0 = dt.date(2008, 1, 1) + dt.timedelta(days=int(rng.integers(0, 3000)))
    visits = p["times"][:1] if cfg.render == "baseline" else p["times"]
    (root / "images" / pid).mkdir(parents=True, exist_ok=True)
    schedule = [(f"v{v}", float(t), rng) for v, t in enumerate(visits)]
    # earlier visits last, from their own stream: the baseline images are the same with or without them
    prior_rng = np.random.default_rng([p["img_seed"], 1])
    schedule += [(vid, t, prior_rng) for vid, t in _prior_ids(p)]
    for vid, t, rng in schedule:
        prior = vid.startswith("p")
        g = geometry_at(p, float(t))
        for view in cfg.xr_views:
            acq = XrAcquisition.draw(rng, view)
            img, lab, pts = render_lateral(g, view, cfg.xr_size, cfg.xr_spacing_mm, acq, rng)
            rel = f"images/{pid}/{pid}_{vid}_cervical_{view}.dcm"
            _write_xr(root / rel, img, seed=cfg.seed, pid=pid, vid=vid, view=view, spacing=cfg.xr_spacing_mm,
                      date=day0 + dt.timedelta(days=int(round(t * 365.25))), sex="F" if p["female"] else "M",
                      age=p["age"] + t)
            rows["truth/measurements"].append(dict(path=rel, patient_id=pid, visit_id=vid, view=f"cervical_{view}",
                                                   pixel_spacing_mm=cfg.xr_spacing_mm,
                                                   **measures_mm(g.at_view(view))))
            if prior:
                rows["prior_images"].append(dict(patient_id=pid, visit_id=vid, view=f"cervical_{view}", path=rel,
                                                 time_years=round(t, 4)))
                continue
            write_labels(root / "truth" / "regions" / f"{pid}_{vid}_cervical_{view}.png", lab)
            rows["images"].append(dict(patient_id=pid, visit_id=vid, view=f"cervical_{view}", path=rel))
            rows["landmarks"].extend(dict(path=rel, landmark=k, x=round(x, 3), y=round(y, 3)) for k, (x, y) in pts.items())
        shift = (float(rng.uniform(-2, 2)), float(rng.uniform(-3, 3)), float(rng.uniform(-3, 3)))
        for contrast in cfg.mr_contrasts:
            vol, lab = render_mr(g, contrast, cfg.mr_shape, cfg.mr_spacing_mm, rng, shift_mm=shift)
            rel = f"images/{pid}/{pid}_{vid}_cervical_mr_{contrast}.nii.gz"
            _write_mr(root / rel, vol, cfg.mr_spacing_mm)
            if prior:
                rows["prior_images"].append(dict(patient_id=pid, visit_id=vid, view=f"cervical_mr_{contrast}",
                                                 path=rel, time_years=round(t, 4)))
            else:
                rows["images"].append(dict(patient_id=pid, visit_id=vid, view=f"cervical_mr_{contrast}", path=rel))
    return rows


def simulate_cervical(cfg: CervicalConfig, out_dir: str | Path) -> Path:
    """Write a cervical cohort into ``out_dir``: ``patients, visits, images, events, landmarks`` (the
    manifest), images, and ``truth/`` (latents, true ADI/SAC/Ranawat per image, region label maps).
    Built in a temporary folder beside ``out_dir`` and renamed onto it at the end."""
    out = Path(out_dir)
    if cfg.render != "none" and cfg.mr_contrasts:
        try:
            import SimpleITK  # noqa: F401
        except ImportError as err:
            raise ConfigError("simulation: writing MR volumes needs SimpleITK (pip install 'raoutcome[mri]'), "
                              "or set mr_contrasts = [] / render = \"none\"") from err
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise InputError(f"refusing to write into {out}: it exists, is not empty and is not a previous "
                         f"cervical simulation (no {MARKER}); choose a new folder")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "truth" / "regions").mkdir(parents=True)
    try:
        acc: dict[str, list[dict]] = {}
        for i, s in enumerate(np.random.SeedSequence(cfg.seed).spawn(cfg.n_patients)):
            p = draw_patient(cfg, i, s)
            parts = [_tables(p)] + ([_render_patient(cfg, p, tmp)] if cfg.render != "none" else [])
            for part in parts:
                for k, r in part.items():
                    acc.setdefault(k, []).extend(r)
        cols = {"images": ["patient_id", "visit_id", "view", "path"], "landmarks": ["path", "landmark", "x", "y"]}
        for name in ("patients", "visits", "events", "images", "landmarks", "truth/patients", "truth/visits",
                     "truth/measurements", "prior_visits", "prior_images", "truth/prior_visits"):
            frame = pd.DataFrame(acc.get(name, []), columns=cols.get(name))
            if name in ("images", "landmarks", "prior_visits", "prior_images", "truth/prior_visits") and frame.empty:
                continue
            frame.to_csv(tmp / f"{name}.csv", index=False)
        conf = {k: (list(v) if isinstance(v, tuple) else v) for k, v in dataclasses.asdict(cfg).items() if k != "extra"}
        (tmp / MARKER).write_text(json.dumps({"generator": "raoutcome.synth.cervical", "config": conf,
                                              "landmarks": list(LANDMARKS)}, indent=2, sort_keys=True))
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out

