"""``simulate()``: draw, render and write a whole synthetic cohort, one patient at a time.

Each patient gets its own seed from ``numpy.random.SeedSequence(seed).spawn(n_patients)`` and is
rendered and written by a worker process (``multiprocessing.Pool``); the main process only appends
the patient's table rows to the CSV files, so memory stays flat in cohort size and the output is
bit-identical for a given seed whatever the number of workers. The cohort is built in a temporary
folder beside ``out_dir`` and renamed onto it at the end.
"""
from __future__ import annotations

import datetime as dt
import json
import multiprocessing as mp
import os
import shutil
from pathlib import Path

import numpy as np

from raoutcome.anatomy import DEFORMITY_EVENT, FOOT_VIEWS, joint_name
from raoutcome.errors import InputError
from raoutcome.io_utils import replace_folder
from . import outcomes as oc
from .config import SimulationConfig, load_config, to_dict
from .course import SiteTable, draw_course, read_scores, site_table
from .mortality import draw_death_time
from .observation import detect_at_visits
from .phantom import Acquisition, ViewState, render_view
from .writer import TableWriter, write_dicom, write_labels, write_png16

MARKER = "truth/simulation.json"
COLUMNS = {
    "patients": ["patient_id", "sex", "age", "rf", "acpa", "disease_duration_years"],
    "visits": ["patient_id", "visit_id", "time_years", "svdh_total", "svdh_jsn", "svdh_erosion",
               "haq", "pain", "das28"],
    "images": ["patient_id", "visit_id", "view", "path"],
    "events": ["patient_id", "event", "time_years", "observed"],
    "joints": ["patient_id", "visit_id", "joint", "kind", "score"],
    "landmarks": ["path", "landmark", "x", "y"],
    # a second, independent reading of every read visit (same reader-error model): SDC, ICC, error correction
    "retest": ["patient_id", "visit_id", "svdh_total", "svdh_jsn", "svdh_erosion"],
    "retest_joints": ["patient_id", "visit_id", "joint", "kind", "score"],
    "truth/patients": ["patient_id", "sex", "age", "female", "rf", "acpa", "disease_duration_years",
                       "baseline_svdh_full", "rate", "rapid", "erosion_v0", "carpal_collapse_v0",
                       "osteopenia_v0", "log_hazard", "hazard", "event_time_true", "censor_time",
                       "death_time_true"],
    "truth/visits": ["patient_id", "visit_id", "time_years", "svdh_total", "svdh_jsn", "svdh_erosion",
                     "osteopenia", "swelling", "carpal_collapse", "activity", "damage", "haq_mean",
                     "pain_mean", "linear_predictor", "hazard"],
    "truth/joints": ["patient_id", "visit_id", "joint", "kind", "score"],
}

INTERVAL_COLUMNS = ["time_lower", "time_upper"]  # events table, with [outcomes.hazard] at_visits
DEATH_EVENT = "death"  # the competing event, with [outcomes.hazard] death_smr > 0


def columns_for(cfg: SimulationConfig) -> dict[str, list[str]]:
    """The tables' columns for this config (interval columns only when events are found at visits)."""
    cols = {k: list(v) for k, v in COLUMNS.items()}
    if cfg.outcomes.hazard.at_visits:
        cols["events"] = [*cols["events"], *INTERVAL_COLUMNS]
    return cols


_G: dict = {}  # per-worker globals (config, site table, output root)


def _init(cfg: SimulationConfig, sites: SiteTable, root: str, seed: int) -> None:
    _G.update(cfg=cfg, sites=sites, root=Path(root), seed=seed)


def _pixel_spacing(cfg: SimulationConfig, view: str) -> float:
    if cfg.acquisition.pixel_spacing_mm > 0:
        return cfg.acquisition.pixel_spacing_mm
    return (220.0 if view not in FOOT_VIEWS else 250.0) / cfg.image_size


def simulate_patient(index: int, seq: np.random.SeedSequence) -> dict[str, list[dict]]:
    """Draw, render and write one patient; returns its table rows."""
    cfg: SimulationConfig = _G["cfg"]
    sites: SiteTable = _G["sites"]
    root: Path = _G["root"]
    pid = f"P{index + 1:04d}"
    s_course, s_feat, s_out, s_event, s_read, s_miss, s_img = seq.spawn(7)
    r_out, r_miss = np.random.default_rng(s_out), np.random.default_rng(s_miss)
    pc = draw_course(cfg, sites, pid, np.random.default_rng(s_course), np.random.default_rng(s_feat))

    # ---- time to deformity (baseline-visit latents) and random loss to follow-up
    is_ero = np.array([k == "erosion" for k in sites.kind])
    ero_true = (pc.scores * is_ero).sum(axis=1)
    jsn_true = (pc.scores * ~is_ero).sum(axis=1)
    lp = oc.linear_predictor(cfg, float(ero_true[0]), float(pc.carpal_collapse[0]), float(pc.osteopenia[0]),
                             pc.rf, pc.acpa, pc.age)
    t_true, censor, c_random = oc.draw_event(cfg, lp, np.random.default_rng(s_event))
    # RA mortality, the competing event: its own stream (a fixed child key), so the others are unchanged
    hz = cfg.outcomes.hazard
    s_death = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 1000))
    death = draw_death_time(pc.age, pc.female, hz.death_smr, np.random.default_rng(s_death))
    keep = np.ones(len(pc.times), bool)
    keep[1:] = pc.times[1:] <= min(c_random, death)  # no visits after loss to follow-up or death
    if hz.at_visits:  # found at the first attended visit after it, if any (interval-censored)
        seen = pc.times[keep]
        if hz.follow_up_years > 0:
            seen = seen[seen <= hz.follow_up_years] if (seen <= hz.follow_up_years).any() else seen[:1]
        found = detect_at_visits(t_true, seen)
        observed, t_obs = found.observed, found.time
    else:
        observed = int(t_true <= min(censor, death))
        t_obs = float(t_true if observed else min(censor, death))
    V = int(keep.sum())

    dmg = oc.damage_term(jsn_true, ero_true)
    haq_m = oc.haq_mean(cfg, dmg, pc.activity, pc.osteopenia, pc.carpal_collapse, pc.age, pc.female)
    pain_m = oc.pain_mean(cfg, dmg, pc.activity, pc.swelling)
    haq = oc.observe_haq(cfg, haq_m, r_out)
    pain = oc.observe_pain(cfg, pain_m, r_out)
    das = oc.das28(pc.activity, r_out)
    read = read_scores(pc.scores, sites, cfg.course, np.random.default_rng(s_read))
    # the retest reading has its own stream (spawn key 100: independent of any stream added later), so
    # every other table keeps its bytes
    s_retest = np.random.SeedSequence(seq.entropy, spawn_key=(*seq.spawn_key, 100))
    reread = read_scores(pc.scores, sites, cfg.course, np.random.default_rng(s_retest))
    m = cfg.missing
    miss = {k: r_miss.random(len(pc.times)) < getattr(m, k) for k in ("svdh", "haq", "pain", "das28")}

    sex = "F" if pc.female else "M"
    rows: dict[str, list[dict]] = {k: [] for k in COLUMNS}
    rows["patients"].append(dict(patient_id=pid, sex=sex, age=pc.age, rf=pc.rf, acpa=pc.acpa,
                                 disease_duration_years=pc.duration))
    rows["truth/patients"].append(dict(
        patient_id=pid, sex=sex, age=pc.age, female=pc.female, rf=pc.rf, acpa=pc.acpa,
        disease_duration_years=pc.duration, baseline_svdh_full=pc.baseline, rate=pc.rate, rapid=pc.rapid,
        erosion_v0=int(ero_true[0]), carpal_collapse_v0=pc.carpal_collapse[0], osteopenia_v0=pc.osteopenia[0],
        log_hazard=lp, hazard=float(np.exp(lp)), event_time_true=float(t_true), censor_time=float(censor),
        death_time_true=float(death) if np.isfinite(death) else float("nan")))
    deformity = dict(patient_id=pid, event=DEFORMITY_EVENT, time_years=round(t_obs, 4), observed=observed)
    if hz.at_visits:  # observed: (last visit without, first visit with]; censored: lower = last visit
        deformity.update(time_lower=round(found.lower, 4),
                         time_upper=round(found.upper, 4) if found.observed else float("nan"))
    rows["events"].append(deformity)
    if hz.death_smr > 0:  # death is recorded exactly (registry), when followed up
        followed = max(censor, float(pc.times[keep][-1]))  # to the end of follow-up or the last visit
        rows["events"].append(dict(patient_id=pid, event=DEATH_EVENT, time_years=round(min(death, followed), 4),
                                   observed=int(death <= followed)))

    jnames = [joint_name(v, s) for v, s in zip(sites.view, sites.site)]
    r_img = np.random.default_rng(s_img)
    day0 = dt.date(2005, 1, 1) + dt.timedelta(days=int(r_img.integers(0, 3650)))
    for v in range(V):
        vid = f"v{v}"
        t = float(pc.times[v])
        jr, er = (read[v] * ~is_ero).sum(), (read[v] * is_ero).sum()
        nan = float("nan")
        rows["visits"].append(dict(
            patient_id=pid, visit_id=vid, time_years=round(t, 4),
            svdh_total=nan if miss["svdh"][v] else int(jr + er), svdh_jsn=nan if miss["svdh"][v] else int(jr),
            svdh_erosion=nan if miss["svdh"][v] else int(er), haq=nan if miss["haq"][v] else haq[v],
            pain=nan if miss["pain"][v] else pain[v], das28=nan if miss["das28"][v] else das[v]))
        if not miss["svdh"][v]:
            jr2, er2 = int((reread[v] * ~is_ero).sum()), int((reread[v] * is_ero).sum())
            rows["retest"].append(dict(patient_id=pid, visit_id=vid, svdh_total=jr2 + er2, svdh_jsn=jr2,
                                       svdh_erosion=er2))
        rows["truth/visits"].append(dict(
            patient_id=pid, visit_id=vid, time_years=round(t, 4), svdh_total=int(jsn_true[v] + ero_true[v]),
            svdh_jsn=int(jsn_true[v]), svdh_erosion=int(ero_true[v]), osteopenia=pc.osteopenia[v],
            swelling=pc.swelling[v], carpal_collapse=pc.carpal_collapse[v], activity=pc.activity[v],
            damage=dmg[v], haq_mean=haq_m[v], pain_mean=pain_m[v], linear_predictor=lp, hazard=float(np.exp(lp))))
        for j, name in enumerate(jnames):
            rows["truth/joints"].append(dict(patient_id=pid, visit_id=vid, joint=name, kind=sites.kind[j],
                                             score=int(pc.scores[v, j])))
            if not miss["svdh"][v]:
                rows["joints"].append(dict(patient_id=pid, visit_id=vid, joint=name, kind=sites.kind[j],
                                           score=int(read[v, j])))
                rows["retest_joints"].append(dict(patient_id=pid, visit_id=vid, joint=name, kind=sites.kind[j],
                                                  score=int(reread[v, j])))
        # ---- images
        present = [r_miss.random() >= m.view for _ in cfg.views]
        if not any(present):
            present[int(r_miss.integers(len(cfg.views)))] = True
        for view, here in zip(cfg.views, present):
            acq_seed = r_img.integers(0, 2**63)
            if not here or not cfg.render:
                continue
            st = _view_state(cfg, sites, pc, v, view)
            rng = np.random.default_rng(acq_seed)
            acq = Acquisition.draw(rng, cfg.acquisition, mirror=view.endswith("right"))
            img, label, lms = render_view(view, st, cfg.image_size, acq, rng)
            stem = f"{pid}_{vid}_{view}"
            ext = "dcm" if cfg.image_format == "dicom" else "png"
            rel = f"images/{pid}/{stem}.{ext}"
            (root / "images" / pid).mkdir(parents=True, exist_ok=True)
            if ext == "dcm":
                write_dicom(root / rel, img, seed=_G["seed"], patient_id=pid, sex=sex, visit_id=vid, view=view,
                            study_date=day0 + dt.timedelta(days=int(round(t * 365.25))),
                            pixel_spacing_mm=_pixel_spacing(cfg, view), age_years=pc.age + t)
            else:
                write_png16(root / rel, img)
            write_labels(root / "truth" / "regions" / f"{stem}.png", label)
            rows["images"].append(dict(patient_id=pid, visit_id=vid, view=view, path=rel))
            rows["landmarks"].extend(dict(path=rel, landmark=k, x=round(x, 2), y=round(y, 2))
                                     for k, (x, y) in _annotated(lms, cfg, acq_seed).items())
    return rows


def _annotated(landmarks: dict, cfg, acq_seed: int) -> dict:
    """The landmarks as an annotator (or detector) would write them: exact when
    ``acquisition.landmark_sd`` is 0, else each coordinate moved by Gaussian error of that SD (a fraction
    of the image side), kept inside the image. Its own random stream: the images do not change."""
    sd = cfg.acquisition.landmark_sd * cfg.image_size
    if sd <= 0:
        return landmarks
    rng = np.random.default_rng([acq_seed, 1])
    hi = cfg.image_size - 1e-3
    return {k: (float(np.clip(x + rng.normal(0, sd), 0, hi)), float(np.clip(y + rng.normal(0, sd), 0, hi)))
            for k, (x, y) in landmarks.items()}


def _view_state(cfg, sites, pc, v, view) -> ViewState:
    st = ViewState(osteopenia=float(pc.osteopenia[v]), swelling=float(pc.swelling[v]),
                   collapse=float(pc.carpal_collapse[v]) if view not in FOOT_VIEWS else 0.0,
                   vis_osteopenia=cfg.features.osteopenia.visibility, vis_swelling=cfg.features.swelling.visibility,
                   vis_collapse=cfg.features.carpal_collapse.visibility)
    for j, (vw, site, kind) in enumerate(zip(sites.view, sites.site, sites.kind)):
        if vw != view:
            continue
        (st.erosion if kind == "erosion" else st.jsn)[site] = int(pc.scores[v, j])
        if kind == "erosion":
            st.order[site] = tuple(int(i) for i in pc.site_order[j])
    return st


def _prepare_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or (any(out.iterdir()) and not (out / MARKER).is_file())):
        raise InputError(f"refusing to write into {out}: it exists, is not empty and is not a previous "
                         f"simulation output (no {MARKER}); choose a new folder")


def simulate(config_path=None, out_dir="synthetic_cohort", seed: int | None = None,
             image_format: str | None = None, *, config: SimulationConfig | None = None) -> Path:
    """Simulate a cohort into ``out_dir`` (manifest tables, images, ``truth/``); returns the folder.

    ``config_path``: a simulator TOML (``None``: code defaults); ``seed`` / ``image_format`` override it.
    Raises :class:`raoutcome.errors.ConfigError` for bad config values and :class:`InputError` when
    ``out_dir`` holds something other than a previous simulation.
    """
    from raoutcome.errors import ConfigError
    from .oracle import write_oracle

    cfg = config if config is not None else load_config(config_path)
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
            raise ConfigError(f"config key 'seed': must be a non-negative integer (value: {seed!r})")
        cfg = cfg.replace(seed=int(seed))
    if image_format is not None:
        fmt = str(image_format).lower()
        if fmt not in ("dicom", "png"):
            raise ConfigError(f"config key 'image_format': must be dicom or png (value: {image_format!r})")
        cfg = cfg.replace(image_format=fmt)
    out = Path(out_dir)
    _prepare_out(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp{os.getpid()}"
    if tmp.exists():
        shutil.rmtree(tmp)
    (tmp / "truth" / "regions").mkdir(parents=True)
    sites = site_table(cfg.views)
    try:
        tables = TableWriter(tmp, columns_for(cfg))
        try:
            seqs = np.random.SeedSequence(cfg.seed).spawn(cfg.n_patients)
            args = list(enumerate(seqs))
            workers = max(1, min(cfg.workers, os.cpu_count() or 1, cfg.n_patients))
            if workers == 1:
                _init(cfg, sites, str(tmp), cfg.seed)
                results = (simulate_patient(i, s) for i, s in args)
                for rows in results:
                    for name, r in rows.items():
                        tables.write(name, r)
            else:
                ctx = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
                with ctx.Pool(workers, initializer=_init, initargs=(cfg, sites, str(tmp), cfg.seed)) as pool:
                    for rows in pool.imap(_star, args, chunksize=2):
                        for name, r in rows.items():
                            tables.write(name, r)
        finally:
            tables.close()
        resolved = to_dict(cfg)
        resolved.pop("workers")  # does not change a single byte of the output
        (tmp / MARKER).write_text(json.dumps({"generator": "raoutcome.synth", "config": resolved},
                                             indent=2, sort_keys=True))
        write_oracle(tmp, cfg)
        replace_folder(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _star(args):
    return simulate_patient(*args)
