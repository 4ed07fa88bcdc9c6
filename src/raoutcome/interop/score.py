"""``raoutcome pacs score``: new studies on a PACS → model → one TID 1500 SR per study, stored back.

For every study the search finds (this process's shard of them under ``torchrun``: a study belongs
to rank ``sha256(StudyInstanceUID) mod WORLD_SIZE``) that the ledger does not list as done:

1. if the server already holds this study's SR (its UIDs are derived from the study and the
   algorithm, :func:`~raoutcome.interop.sr.sr_uids`), the study is marked done — this is how a run
   killed between "stored" and "recorded" recovers without a second SR;
2. otherwise the study joins a chunk; a full chunk is retrieved, de-identified into a temporary
   cohort folder inside the private state folder (:func:`~raoutcome.interop.pull.save_instance`),
   predicted with the run's models (:func:`raoutcome.training.predict.write_predictions`, the
   library's streaming predictor; models loaded once), and each study's SR is built from the
   Predictions (:func:`~raoutcome.interop.sr.build_report`, patient and study modules from the
   original headers held in memory only), stored (STOW-RS / C-STORE), then recorded in the ledger;
   the chunk's folder is deleted.

Memory and disk stay flat: one chunk of images at a time, the ledger is SQLite (looked up, never
loaded whole), the search is paged. A crash loses at most the chunk in flight. By default each study
is scored from its own images (with the patient's other studies of the same chunk); ``history=True``
also retrieves the patient's earlier studies as unscored visits, so the longitudinal model sees the
sequence it would see in ``predict`` on the whole archive.
"""
from __future__ import annotations

__all__ = ["ScoreSummary", "score", "shard_of"]

import datetime as dt
import hashlib
import json
import os
import shutil
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

from raoutcome.errors import InputError
from raoutcome.interop.credentials import PacsError, ServerSpec
from raoutcome.interop.private import PrivateStore
from raoutcome.interop.server import StudyRef, connect
from raoutcome.io_utils import atomic_write


@dataclass
class ScoreSummary:
    stored: int = 0          # SRs stored by this call
    recovered: int = 0       # SR found on the server, ledger completed
    skipped: int = 0         # already done in the ledger
    unusable: int = 0        # no usable image
    failed: int = 0          # a server error (retried next time)
    images: int = 0          # images scored
    overlays: int = 0        # attribution overlays stored (secondary captures)
    seconds: float = 0.0
    errors: list[str] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)  # seconds per step (search, retrieve, ...)

    def timed(self, phase: str):
        """``with summary.timed("retrieve"): ...`` adds the block's wall time to ``phases``."""
        import contextlib

        @contextlib.contextmanager
        def block():
            start = time.perf_counter()
            try:
                yield
            finally:
                self.phases[phase] = self.phases.get(phase, 0.0) + time.perf_counter() - start
        return block()

    @property
    def images_per_s(self) -> float:
        return self.images / self.seconds if self.seconds > 0 else float("nan")


def shard_of(study_uid: str, world: int) -> int:
    return int(hashlib.sha256(study_uid.encode()).hexdigest(), 16) % max(world, 1)


class _Scorer:
    """The run's models, loaded once, predicting one chunk cohort at a time.

    A run of another route than the whole-image one (``[model] route``) is predicted through the public
    :func:`raoutcome.training.predict_run` dispatch (models then load per chunk). A site-route run
    (issue 23: joints read from patches posed by landmarks, the ``joint`` dimension) first gets the chunk's
    landmarks from the landmark detector, gated by the landmark QC
    (:func:`raoutcome.interop.landmark_gate.detect_and_gate`); ``self.qc`` then holds each image's verdict.
    """

    def __init__(self, run: Path, detector: str | os.PathLike | None = None, overlay: str | None = None):
        from raoutcome import __version__
        from raoutcome.interop.sr import Algorithm
        from raoutcome.training.distributed import pick_device
        from raoutcome.training.run import CONFIG_NAME, load_run, read_run_config

        self.run = run
        self.cfg = read_run_config(run)
        self.route = str(self.cfg.model.get("route", "image") or "image")
        self.models = None
        self.detector = None
        self.landmarks = None  # site route: the landmarks the last chunk was scored from (after the QC gate)
        self.visit_of: dict[str, tuple[str, str]] = {}  # site route: the last chunk's image path -> (patient, visit)
        self.qc: dict = {}
        n_models: object = "?"
        parameters: tuple[str, ...] = ()
        if self.route == "sites":
            from raoutcome.interop.landmark_gate import default_detector_for
            from raoutcome.models.landmarks import load_detector

            path = default_detector_for(run, detector)
            self.detector = load_detector(path)  # ConfigError (an InputError) for a missing or foreign file
            digest = hashlib.sha256(Path(path or _shipped_detector()).read_bytes()).hexdigest()[:12]
            parameters = (f"landmarks=detected:{Path(path).name if path else 'default'}:{digest}",)
        elif detector is not None:
            raise InputError(f"{run}: a landmark detector is used by site-route runs only (model.route = 'sites'); "
                             f"this run reads whole images")
        if self.route == "image":
            self.models, self.cfg = load_run(run)
            if self.models[0].spec.anomaly_landmarks:
                raise InputError(f"{run}: this run's model needs landmarks, which pulled studies do not have")
            self.device = pick_device(self.cfg.train["device"])
            n_models = len(self.models)
        self.overlay = overlay
        if overlay is not None:
            self._check_overlay(run, overlay)
        digest = hashlib.sha256((run / CONFIG_NAME).read_bytes()).hexdigest()[:12]
        self.algorithm = Algorithm(version=__version__, run=f"{run.name}:{digest}",
                                   parameters=(f"ensemble_size={n_models}", f"route={self.route}", *parameters))

    def _check_overlay(self, run: Path, head: str) -> None:
        from raoutcome.anatomy import view_names
        from raoutcome.attribution.methods import model_heads

        if self.route == "sites":
            from raoutcome.interop.joint_overlay import overlay_kinds
            from raoutcome.outcomes import site_outcome

            site = site_outcome()
            if site is None or not self.cfg.heads.get(site.name):
                raise InputError(f"{run}: --overlay draws per-joint scores; this site-route run reads no joint "
                                 "(it was trained without human scores)")
            if head not in overlay_kinds():
                raise InputError(f"--overlay {head!r}: a site-route run draws its per-joint scores of one kind "
                                 f"({', '.join(overlay_kinds())})")
            return
        if self.models is None:
            raise InputError(f"{run}: --overlay draws a whole-image model's attribution or a site-route model's "
                             f"per-joint scores; this run's route is {self.route!r}")
        heads = model_heads(self.models[0], view_names()[0], self.cfg.model["image_size"])
        if head not in heads:
            raise InputError(f"--overlay {head!r}: not a head of this run (heads: {', '.join(heads)})")

    def overlays(self, cohort_dir: Path, items: list[tuple[str, str]], predictions=None) -> list:
        """RGB overlays of the chunk images ``items`` (relative path, view): a whole-image run's attribution maps;
        a site-route run's per-joint scores (``predictions``) at the landmarks it read, None for an image it did
        not score."""
        from raoutcome.imaging.io import read_image
        from raoutcome.interop.overlay import attribution_overlays

        if self.route == "sites" and (predictions is None or self.landmarks is None):
            return [None] * len(items)
        cfg = self.cfg
        images = [read_image(cohort_dir / rel).pixels for rel, _ in items]
        if self.route == "sites":
            from raoutcome.interop.joint_overlay import joint_overlays

            keys = [(rel, view, *self.visit_of[rel]) for rel, view in items]
            return joint_overlays(images, keys, self.landmarks, predictions, self.overlay)
        return attribution_overlays(self.models, images, [v for _, v in items], self.overlay, cfg.model["image_size"],
                                    contrast=tuple(cfg.data["contrast"]) if cfg.data["contrast"] else None,
                                    pad_value=float(cfg.data.get("pad_value", 0.0) or 0.0), device=self.device)

    def predict(self, cohort_dir: Path):
        """Predictions of the chunk cohort in ``cohort_dir`` and the number of images read (None, 0 when the
        landmark QC left no image to score)."""
        from raoutcome.cohort import load
        from raoutcome.imaging.cache import ImageCache
        from raoutcome.predictions import load_predictions
        from raoutcome.training.predict import PredictionGroup, write_predictions
        from raoutcome.training.run import _dataset_kwargs

        cohort = load(cohort_dir)
        out = cohort_dir / "predictions.nc"
        if self.detector is not None:
            return self._predict_sites(cohort, cohort_dir, out)
        if self.models is None:
            from raoutcome.training import predict_run

            predict_run(self.run, cohort, out)
            return load_predictions(out), len(cohort.images)
        cfg = self.cfg
        contrast = tuple(cfg.data["contrast"]) if cfg.data["contrast"] else None
        size = cfg.model["image_size"]
        write_predictions([PredictionGroup(self.models, cohort.patient_ids, -1)], cohort,
                          lambda: ImageCache(cohort_dir / "cache", size, contrast=contrast), out,
                          cfg.predict["batch_patients"], 0, self.device, amp=self.device.type == "cuda",
                          attrs={"run": self.algorithm.run}, dataset_kwargs=_dataset_kwargs(cfg, cohort, ()))
        return load_predictions(out), len(cohort.images)

    def _predict_sites(self, cohort, cohort_dir: Path, out: Path):
        from dataclasses import replace

        from raoutcome.interop.landmark_gate import detect_and_gate
        from raoutcome.predictions import load_predictions
        from raoutcome.training.config import TrainConfig
        from raoutcome.training.site_run import predict_site_run
        from raoutcome.workflows.landmarks import write_landmarks

        landmarks, detected, self.qc = detect_and_gate(cohort, self.detector)
        write_landmarks(detected, cohort_dir / "landmarks.csv")  # the chunk's record (pseudonymous paths)
        scored = {q.path for q in self.qc.values() if q.scored}
        self.landmarks = landmarks if scored else None
        im = cohort.images
        self.visit_of = dict(zip(im["path"].astype(str), zip(im["patient_id"].astype(str), im["visit_id"].astype(str))))
        if not scored:
            return None, 0
        # the site patches of a chunk are never reused: cache them in the chunk's folder, not in the run's
        cfg = TrainConfig({**self.cfg.values, "data": {**self.cfg.data, "cache_dir": str(cohort_dir / "site_cache")}},
                          self.cfg.source)
        predict_site_run(self.run, replace(cohort, landmarks=landmarks), cfg, out)
        return load_predictions(out), len(scored)


def _shipped_detector() -> Path:
    from raoutcome.models.landmarks import default_detector_path

    return default_detector_path()


def score(run: str | os.PathLike, spec: ServerSpec, state: str | os.PathLike | None = None,
          since: dt.date | None = None, modalities: Sequence[str] = ("DX", "CR"), body_parts: Sequence[str] = (),
          chunk: int = 16, fhir: str | os.PathLike | None = None, limit: int | None = None,
          keep_predictions: str | os.PathLike | None = None, history: bool = False,
          progress: Callable[[str], None] | None = None, overlap: bool = True,
          detector: str | os.PathLike | None = None, overlay: str | None = None) -> ScoreSummary:
    """Score every new study on the server and store one SR per study (see the module docstring).

    ``limit`` stops after that many studies were handled (stored or unusable) by this call;
    ``keep_predictions`` (a folder) keeps each chunk's Predictions file (pseudonymous ids only) and, for a
    site-route run, the chunk's detected landmarks (``<chunk>.landmarks.csv``).
    ``history``: also retrieve each patient's earlier studies (same modalities, any date) as unscored
    visits, so the longitudinal model sees the patient's sequence up to the scored study.
    ``overlap``: build and store a chunk's SRs in a worker thread while the next chunk is retrieved
    and predicted.
    ``detector``: the landmark detector of a site-route run (default: the run folder's own
    ``landmark_detector.safetensors``, else the shipped one; :mod:`raoutcome.interop.landmark_gate`).
    ``overlay``: a head of a whole-image run, whose attribution overlay of each scored image is stored too, as a
    Secondary Capture in the study (:mod:`raoutcome.interop.overlay`); for a site-route run a per-joint score
    kind (``erosion`` or ``jsn``), whose per-joint overlay is stored the same way
    (:mod:`raoutcome.interop.joint_overlay`).
    """
    run = Path(run)
    rank, world = int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1))
    state_dir = Path(state) if state else run.parent / f"{run.name}.pacs-private"
    scorer = _Scorer(run, detector, overlay)
    store = PrivateStore(state_dir)
    server = connect(spec, label=store.study_key)
    summary = ScoreSummary()
    start = time.perf_counter()
    pending: list[StudyRef] = []
    queued = 0
    # SR building and storing of one chunk (Python, highdicom) runs in one worker thread while the main
    # thread retrieves and predicts the next chunk (I/O and torch, which release the GIL). The worker has
    # its own ledger connection, server client and counters; at most one chunk waits to be finished.
    finisher = _Finisher(spec, state_dir, scorer.algorithm, fhir, rank, progress) if overlap else None

    def flush(studies: list[StudyRef]) -> None:
        prepared = _prepare_chunk(studies, scorer, server, store, state_dir, modalities, body_parts, rank, summary,
                                  keep_predictions, history)
        if finisher is not None:
            finisher.submit(prepared)
        else:
            _finish_chunk(prepared, server, store, scorer.algorithm, fhir, rank, summary, progress)

    try:
        from raoutcome.interop.sr import sr_uids

        for study in server.studies(since, modalities):
            if limit is not None and queued + len(pending) >= limit:
                break
            if shard_of(study.study_uid, world) != rank:
                continue
            key = store.study_key(study.study_uid)
            if store.scored_status(key) in ("stored", "unusable"):
                summary.skipped += 1
                continue
            series_uid, sop_uid = sr_uids(study.study_uid, scorer.algorithm)
            try:
                with summary.timed("check server for SR"):
                    present = server.has_instance(study.study_uid, series_uid, sop_uid)
            except PacsError as err:
                summary.failed += 1
                summary.errors.append(str(err))
                continue
            if present:
                store.record_scored(key, "stored", sop_uid, 0, "SR found on the server", rank)
                summary.recovered += 1
                continue
            pending.append(study)
            if len(pending) >= chunk:
                queued += len(pending)
                flush(pending)
                pending = []
        if pending:
            flush(pending)
    finally:
        try:
            if finisher is not None:
                finisher.close(summary)
        finally:
            server.close()
            store.close()
    summary.seconds = time.perf_counter() - start
    return summary


class _Finisher:
    """One worker thread finishing chunks (SR build, store, ledger, FHIR, clean-up), one at a time."""

    def __init__(self, spec: ServerSpec, state_dir: Path, algorithm, fhir, rank: int, progress):
        from concurrent.futures import ThreadPoolExecutor

        self.spec, self.state_dir, self.algorithm, self.fhir, self.rank = spec, state_dir, algorithm, fhir, rank
        self.progress = progress
        self.summary = ScoreSummary()
        self.pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="pacs-sr")
        self.future = None
        self.store = self.server = None

    def _run(self, prepared) -> None:
        if self.store is None:  # SQLite connections and HTTP sessions stay in the thread that made them
            self.store = PrivateStore(self.state_dir)
            self.server = connect(self.spec, label=self.store.study_key)
        _finish_chunk(prepared, self.server, self.store, self.algorithm, self.fhir, self.rank, self.summary,
                      self.progress)

    def submit(self, prepared) -> None:
        self.wait()
        self.future = self.pool.submit(self._run, prepared)

    def wait(self) -> None:
        if self.future is not None:
            future, self.future = self.future, None
            future.result()  # re-raises the worker's exception here

    def close(self, summary: ScoreSummary) -> None:
        try:
            self.wait()
        finally:
            def shut():
                if self.server is not None:
                    self.server.close()
                    self.store.close()
            self.pool.submit(shut).result()
            self.pool.shutdown(wait=True)
            w = self.summary
            summary.stored += w.stored
            summary.unusable += w.unusable
            summary.overlays += w.overlays
            summary.failed += w.failed
            summary.errors.extend(w.errors)
            for k, v in w.phases.items():
                summary.phases[k] = summary.phases.get(k, 0.0) + v


def _add_history(studies: list[StudyRef], server, store: PrivateStore, work: Path, modalities, body_parts,
                 taken: set, summary: ScoreSummary) -> list[str]:
    """Retrieve the chunk's patients' earlier studies into ``work`` (unscored context); their keys."""
    from raoutcome.interop.pull import save_instance

    chunk = {s.study_uid for s in studies}
    added: dict[str, str] = {}
    for study in studies:
        if not study.patient_id or not study.study_date:
            continue
        with summary.timed("history"):
            try:
                earlier = [r for r in server.studies(None, modalities, patient_id=study.patient_id)
                           if r.study_uid not in chunk and r.study_uid not in added and r.study_date
                           and r.study_date < study.study_date]
                for ref in earlier:
                    added[ref.study_uid] = store.study_key(ref.study_uid)
                    for inst in server.instances(ref.study_uid, modalities, body_parts):
                        _p, key, rel, _reason = save_instance(server.retrieve(inst), store, work, taken,
                                                              durable=False)
                        if rel:
                            store.record_instance(inst.sop_uid, key, "ok", view=Path(rel).stem.split("_", 1)[1],
                                                  path=rel)
            except PacsError as err:  # history is context: a failure leaves the study scored without it
                summary.errors.append(f"history: {err}")
    return list(added.values())


@dataclass
class _Prepared:
    """A chunk retrieved and predicted, waiting for its SRs."""

    work: Path
    studies: list
    keys: dict          # study UID -> study key
    headers: dict
    views: dict
    reasons: dict
    failed: set
    predictions: object  # xarray Dataset or None
    qc: dict = field(default_factory=dict)  # study key -> [ImageQc] (site route: the landmark QC's verdicts)
    overlays: dict = field(default_factory=dict)  # study key -> [(view, RGB array)] (``--overlay``)
    overlay_head: str | None = None
    overlay_route: str = "image"  # "sites": the overlays draw per-joint scores, not attribution


def _prepare_chunk(studies: list[StudyRef], scorer: _Scorer, server, store: PrivateStore, state_dir: Path,
                   modalities, body_parts, rank: int, summary: ScoreSummary, keep_predictions=None,
                   history: bool = False) -> _Prepared:
    """Retrieve, de-identify into a temporary cohort and predict one chunk (main thread)."""
    from raoutcome.interop.pull import save_instance, write_manifest

    work = state_dir / "work" / f"rank{rank}-{uuid.uuid4().hex[:8]}"
    work.mkdir(parents=True)
    headers: dict[str, list] = {}
    views: dict[str, dict] = {}
    reasons: dict[str, list[str]] = {}
    failed: set[str] = set()
    qc: dict[str, list] = {}
    rels: list[tuple[str, str, str]] = []  # (study key, relative path, view) of the chunk's scored studies
    overlays: dict[str, list] = {}
    try:
        taken: set[tuple[str, str]] = set()
        for study in studies:
            key = store.study_key(study.study_uid)
            headers[key], views[key], reasons[key] = [], {}, []
            try:
                with summary.timed("search instances"):
                    refs = server.instances(study.study_uid, modalities, body_parts)
                for ref in refs:
                    with summary.timed("retrieve"):
                        ds = server.retrieve(ref)
                    with summary.timed("de-identify, write, decode check"):
                        _pseudo, key, rel, reason = save_instance(ds, store, work, taken, durable=False)
                    header = ds.copy()
                    for tag in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
                        if tag in header:
                            delattr(header, tag)
                    headers[key].append(header)
                    if rel:
                        view = Path(rel).stem.split("_", 1)[1]
                        views[key][view] = header
                        rels.append((key, rel, view))
                        store.record_instance(ref.sop_uid, key, "ok", view=view, path=rel)
                    else:
                        reasons[key].append(reason)
                        store.record_instance(ref.sop_uid, key, "unusable", reason=reason)
            except PacsError as err:
                failed.add(key)
                summary.failed += 1
                summary.errors.append(str(err))
                store.record_scored(key, "error", None, 0, str(err), rank)
        keys = [k for k in headers if k not in failed]
        if history:
            keys += _add_history(studies, server, store, work, modalities, body_parts, taken, summary)
        with summary.timed("manifest"):
            counts = write_manifest(store, work, keys)
        if counts["images"]:
            with summary.timed("predict"):
                predictions, n_images = scorer.predict(work)
            for verdict in scorer.qc.values():  # images/<pseudonym>/<study key>_<view>.dcm
                qc.setdefault(Path(verdict.path).stem.split("_", 1)[0], []).append(verdict)
            scorer.qc = {}
            if scorer.overlay is not None:
                keep = [(k, r, v) for k, r, v in rels if k not in failed]
                with summary.timed("overlays"):
                    for (k, _r, v), rgb in zip(keep, scorer.overlays(work, [(r, v) for _k, r, v in keep], predictions)):
                        if rgb is not None:  # site route: an image the landmark QC kept from scoring has none
                            overlays.setdefault(k, []).append((v, rgb))
            if keep_predictions:
                Path(keep_predictions).mkdir(parents=True, exist_ok=True)
                for name, target in (("predictions.nc", f"{work.name}.nc"),
                                     ("landmarks.csv", f"{work.name}.landmarks.csv")):
                    if (work / name).exists():
                        shutil.copy2(work / name, Path(keep_predictions) / target)
        else:
            predictions, n_images = None, 0
        summary.images += n_images
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return _Prepared(work, list(studies), {st.study_uid: store.study_key(st.study_uid) for st in studies}, headers,
                     views, reasons, failed, predictions, qc, overlays, scorer.overlay, scorer.route)


def _finish_chunk(p: _Prepared, server, store: PrivateStore, algorithm, fhir, rank: int, summary: ScoreSummary,
                  progress) -> None:
    """Build, store and record each study's SR, write FHIR, delete the chunk's folder (worker thread)."""
    from raoutcome.interop.fhir import bundle
    from raoutcome.interop.results import visit_result
    from raoutcome.interop.overlay import build_overlay
    from raoutcome.interop.sr import build_report, sr_uids

    predictions, failed, views, reasons, headers = p.predictions, p.failed, p.views, p.reasons, p.headers
    try:
        visits = set(predictions["visit_id"].values) if predictions is not None else set()
        for study in p.studies:
            key = p.keys[study.study_uid]
            if key in failed:
                continue
            verdicts = p.qc.get(key, [])
            if verdicts and not any(v.scored for v in verdicts):
                why = "landmark QC: " + "; ".join(v.reason for v in sorted(verdicts, key=lambda v: v.view))
                store.record_scored(key, "unusable", None, 0, why, rank)
                summary.unusable += 1
                continue
            if key not in visits:
                if views[key]:
                    why = "another study of the patient on the same day is scored"
                elif reasons[key]:
                    why = "; ".join(sorted(set(reasons[key])))
                else:
                    why = "no instance of the asked modalities"
                store.record_scored(key, "unusable", None, 0, why, rank)
                summary.unusable += 1
                continue
            pseudo = store.db.execute("SELECT pseudonym FROM studies WHERE study_key = ?", (key,)).fetchone()[0]
            result = visit_result(predictions, pseudo, key)
            if not result.outcomes and not result.joints:
                store.record_scored(key, "unusable", None, 0, "the model scored nothing in this study", rank)
                summary.unusable += 1
                continue
            try:
                for number, (view, rgb) in enumerate(p.overlays.get(key, []), 1):
                    with summary.timed("store overlay"):
                        server.store(build_overlay(rgb, views[key][view], study.study_uid, view, p.overlay_head,
                                                   algorithm, number, joints=p.overlay_route == "sites"))
                    summary.overlays += 1
            except PacsError as err:
                summary.failed += 1
                summary.errors.append(str(err))
                store.record_scored(key, "error", None, 0, str(err), rank)
                continue
            try:
                with summary.timed("build SR"):
                    sr = build_report(result, headers[key], study.study_uid, algorithm, views=views[key],
                                      landmark_qc=verdicts)
            except Exception as err:  # noqa: BLE001 - a header highdicom refuses; its text may identify: type only
                why = f"study {key}: cannot build the SR from this study's headers ({type(err).__name__})"
                store.record_scored(key, "unusable", None, 0, why, rank)
                summary.unusable += 1
                summary.errors.append(why)
                continue
            try:
                with summary.timed("store SR"):
                    server.store(sr)
            except PacsError as err:
                summary.failed += 1
                summary.errors.append(str(err))
                store.record_scored(key, "error", None, 0, str(err), rank)
                continue
            store.record_scored(key, "stored", sr_uids(study.study_uid, algorithm)[1], len(views[key]),
                                None, rank)
            summary.stored += 1
            if fhir:
                with atomic_write(Path(fhir) / f"{key}.json") as fh:
                    json.dump(bundle(result, key, algorithm), fh, indent=1)
            if progress:
                progress(f"study {key}: SR stored")
    finally:
        shutil.rmtree(p.work, ignore_errors=True)
