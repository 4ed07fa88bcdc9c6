"""A small resumable stage runner: each stage runs once, records what it made, and is skipped next time.

A study is a chain of stages (simulate -> validate -> train -> ... -> report). Each stage owns a folder
``<out_dir>/<name>/`` and, once its outputs are atomically in place, writes ``<name>/DONE.json``:

.. code-block:: json

    {"stage": "train", "token": "...", "config_hash": "...", "upstream": {"validate": "<token>"},
     "outputs": {"run": "train/run"}, "started": "...", "finished": "...", "seconds": 123.4}

On the next run a stage is **skipped** when its ``DONE.json`` exists, its config hash and the tokens of
the stages it depends on are unchanged, and every recorded output still exists. Otherwise it runs:

* never started, or interrupted (no ``DONE.json``): the folder is kept, so a stage that resumes from its
  own checkpoints (training) picks up where it stopped;
* stale (its config or an upstream stage changed since it started) or ``force=True``: the folder is
  wiped first, so nothing from the old inputs leaks into the new outputs.

Downstream stages see a fresh token whenever an upstream stage re-ran, so a change ripples down the chain.
Each ``DONE.json`` also records the digest of the library's own source (:func:`code_digest`): a resumed
study whose earlier stages were made by other code (an upgrade, a ``git pull`` while it ran) says so in a
warning, since its outputs then mix two versions (the stages are kept: ``force=True`` redoes them).
``run_record.json`` (the resolved config, package versions, seeds, hardware and per-stage timings) is
rewritten atomically after every stage, so even an interrupted run leaves a record.
"""
from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import shutil
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import logging

from rich.console import Console

from raoutcome.io_utils import atomic_write, output_lock

log = logging.getLogger(__name__)

DONE = "DONE.json"
STARTED = "STARTED.json"
RUN_RECORD = "run_record.json"

#: Packages whose versions go into the run record (those installed are listed).
RECORDED_PACKAGES: tuple[str, ...] = (
    "raoutcome", "numpy", "scipy", "pandas", "xarray", "torch", "torchvision", "timm", "captum",
    "torchsurv", "lifelines", "scikit-survival", "scikit-learn", "statsmodels", "pydicom", "matplotlib",
    "rich",
)


@dataclass
class StageContext:
    """What a stage function receives: where to write, and what upstream stages produced."""

    out_dir: Path
    stage_dir: Path
    name: str
    upstream_outputs: dict[str, dict[str, Any]]
    console: Console
    state: dict[str, Any]  # shared in-memory objects (e.g. the loaded Cohort), rebuilt on every run

    def path(self, stage: str, key: str) -> Path:
        """Absolute path of output ``key`` of an upstream ``stage``."""
        return self.out_dir / self.upstream_outputs[stage][key]

    def rel(self, path: Path) -> str:
        """``path`` relative to the study folder (absolute if outside it), as stored in DONE.json."""
        path = Path(path).resolve()
        try:
            return path.relative_to(self.out_dir.resolve()).as_posix()
        except ValueError:
            return str(path)


StageFunc = Callable[[StageContext], Mapping[str, Any]]


@dataclass
class Stage:
    """One step of a study.

    ``func(ctx)`` writes under ``ctx.stage_dir`` and returns its outputs as ``{key: Path or value}``;
    paths are stored relative to the study folder and must exist for the stage to count as done.
    ``config`` is whatever settings the stage depends on (hashed to detect changes). ``needs`` names
    upstream stages. ``reload`` (optional) rebuilds in-memory state for later stages when the stage is
    skipped (e.g. loads the cohort again).
    """

    name: str
    func: StageFunc
    title: str = ""
    needs: Sequence[str] = ()
    config: Any = None
    reload: Callable[[StageContext], None] | None = None


@dataclass
class StageResult:
    name: str
    status: str  # "ran" | "skipped"
    seconds: float
    outputs: dict[str, Any]
    token: str
    started: str
    finished: str
    cpu_seconds: float = 0.0  # CPU time of this process and its finished children (all cores)


def config_hash(config: Any) -> str:
    """Stable hash of any JSON-able configuration (paths become strings)."""
    text = json.dumps(config, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _read_json(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _write_json(path: Path, payload: Mapping[str, Any]) -> None:
    with atomic_write(path) as fh:
        json.dump(payload, fh, indent=2, sort_keys=False, default=str)
        fh.write("\n")


class StageRunner:
    """Run stages in order, skipping finished ones; keep ``run_record.json`` up to date."""

    def __init__(
        self,
        out_dir: str | os.PathLike,
        stages: Sequence[Stage],
        *,
        force: bool = False,
        record: Mapping[str, Any] | None = None,
        console: Console | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.stages = list(stages)
        names = [s.name for s in self.stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique: {names}")
        for s in self.stages:
            unknown = [n for n in s.needs if n not in names[: names.index(s.name)]]
            if unknown:
                raise ValueError(f"stage {s.name!r} needs {unknown}, which do not run before it")
        self.force = force
        self.console = console or Console(stderr=True)
        self.record: dict[str, Any] = record if record is not None else {}
        self.results: dict[str, StageResult] = {}
        self.state: dict[str, Any] = {}

    # -- public -------------------------------------------------------------------------------------
    def run(self) -> dict[str, StageResult]:
        """Run (or skip) every stage, holding the folder's lock (a second run into it is refused)."""
        with output_lock(self.out_dir, "study folder"):
            return self._run_all()

    def _run_all(self) -> dict[str, StageResult]:
        t0 = time.perf_counter()
        self.record.setdefault("started", _now())
        self.record["out_dir"] = str(self.out_dir.resolve())
        self.record["force"] = self.force
        self.record["packages"] = package_versions()
        self.record["code_digest"] = code_digest()
        self.record["hardware"] = hardware_info()
        self.record["stages"] = []
        n = len(self.stages)
        for i, stage in enumerate(self.stages, 1):
            title = stage.title or stage.name
            result = self._run_one(stage, f"[{i}/{n}] {title}")
            self.results[stage.name] = result
            self.record["stages"].append({
                "name": result.name, "status": result.status, "seconds": round(result.seconds, 3),
                "cpu_seconds": round(result.cpu_seconds, 3),
                "started": result.started, "finished": result.finished, "outputs": result.outputs,
            })
            self._save_record()
        self.record["finished"] = _now()
        self.record["total_seconds_this_invocation"] = round(time.perf_counter() - t0, 3)
        self._save_record()
        return self.results

    def stage_dir(self, name: str) -> Path:
        return self.out_dir / name

    # -- internals ----------------------------------------------------------------------------------
    def _ctx(self, stage: Stage) -> StageContext:
        return StageContext(
            out_dir=self.out_dir, stage_dir=self.stage_dir(stage.name), name=stage.name,
            upstream_outputs={n: dict(r.outputs) for n, r in self.results.items()},
            console=self.console, state=self.state,
        )

    def _upstream_tokens(self, stage: Stage) -> dict[str, str]:
        return {n: self.results[n].token for n in stage.needs}

    def _is_done(self, stage: Stage, chash: str, upstream: dict[str, str]) -> dict | None:
        done = _read_json(self.stage_dir(stage.name) / DONE)
        if not done or done.get("config_hash") != chash or done.get("upstream") != upstream:
            return None
        outputs = done.get("outputs") or {}
        if any(not (self.out_dir / outputs[key]).exists() for key in done.get("path_outputs", [])):
            return None
        return done

    def _run_one(self, stage: Stage, label: str) -> StageResult:
        sdir = self.stage_dir(stage.name)
        chash = config_hash(stage.config)
        upstream = self._upstream_tokens(stage)
        done = None if self.force else self._is_done(stage, chash, upstream)
        ctx = self._ctx(stage)
        if done is not None:
            log.info("%s: done earlier (%.1f s on %s); skipped", label, done.get("seconds", 0),
                     done.get("finished", "?"))
            if done.get("code_digest") not in (None, code_digest()):
                log.warning("%s: done earlier by other raoutcome code (source digest %s, now %s): this study's "
                            "outputs mix two versions of the library; rerun with force to redo it", label,
                            done["code_digest"], code_digest())
            if stage.reload is not None:
                stage.reload(ctx)
            return StageResult(stage.name, "skipped", float(done.get("seconds", 0.0)), done["outputs"],
                               done["token"], done.get("started", ""), done.get("finished", ""),
                               float(done.get("cpu_seconds", 0.0)))

        started = _read_json(sdir / STARTED)
        stale = started is not None and (started.get("config_hash") != chash or started.get("upstream") != upstream)
        if sdir.exists() and (self.force or stale or (sdir / DONE).exists()):
            # Finished under other inputs, or forced: nothing in the folder may be reused.
            why = "forced" if self.force else "inputs changed"
            log.info("%s: clearing previous outputs (%s)", label, why)
            shutil.rmtree(sdir)
        elif started is not None:
            log.info("%s: resuming an interrupted run", label)
            _clear_temporaries(sdir)  # half-written files of the killed run (we hold the folder's lock)
        sdir.mkdir(parents=True, exist_ok=True)
        t_start = _now()
        _write_json(sdir / STARTED, {"stage": stage.name, "config_hash": chash, "upstream": upstream,
                                     "started": t_start, "pid": os.getpid()})
        log.info("── %s", label)
        t0, c0 = time.perf_counter(), _cpu_seconds()
        raw = dict(stage.func(ctx) or {})
        seconds, cpu = time.perf_counter() - t0, _cpu_seconds() - c0
        outputs: dict[str, Any] = {}
        path_outputs: list[str] = []
        for key, value in raw.items():
            if isinstance(value, Path):
                if not value.exists():
                    raise RuntimeError(f"stage {stage.name!r} reported output {key}={value} but it does not exist")
                outputs[key] = ctx.rel(value)
                path_outputs.append(key)
            else:
                outputs[key] = value
        finished = _now()
        token = uuid.uuid4().hex
        _write_json(sdir / DONE, {
            "stage": stage.name, "token": token, "config_hash": chash, "upstream": upstream,
            "outputs": outputs, "path_outputs": path_outputs, "started": t_start, "finished": finished,
            "seconds": round(seconds, 3), "cpu_seconds": round(cpu, 3), "code_digest": code_digest(),
            "load_average_1min": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
        })
        log.info("%s: finished in %.1f s (CPU %.1f s)", label, seconds, cpu)
        return StageResult(stage.name, "ran", seconds, outputs, token, t_start, finished, cpu)

    def _save_record(self) -> None:
        _write_json(self.out_dir / RUN_RECORD, self.record)


def _clear_temporaries(folder: Path) -> None:
    """Remove what an interrupted writer left: the ``.<name>.*tmp*`` files and folders of
    :func:`raoutcome.io_utils.atomic_write` / ``atomic_path``, anywhere under ``folder``."""
    for path in sorted(folder.rglob(".*tmp*"), key=lambda p: len(p.parts), reverse=True):
        if not path.name.startswith(".") or ".tmp" not in path.name or not path.exists():
            continue
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


@functools.lru_cache(maxsize=1)
def code_digest() -> str:
    """SHA-256 (16 hex digits) of the raoutcome package's Python sources (relative path and bytes of every
    ``.py`` file, in sorted order), computed once per process: two runs with the same digest ran the same code."""
    import raoutcome

    root = Path(raoutcome.__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def _cpu_seconds() -> float:
    """User + system CPU time of this process and its waited-for children (DataLoader workers, pools)."""
    import resource

    own, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


def package_versions(names: Sequence[str] = RECORDED_PACKAGES) -> dict[str, str]:
    out = {"python": platform.python_version()}
    for name in names:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def hardware_info() -> dict[str, Any]:
    """CPU count, torch threads and GPU name (if torch is importable and a GPU is present)."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "python_executable": sys.executable,
    }
    if hasattr(os, "getloadavg"):  # other work on the machine stretches wall times: record how busy it was
        info["load_average_1_5_15_min"] = [round(x, 2) for x in os.getloadavg()]
    try:
        import psutil

        info["memory_gb"] = round(psutil.virtual_memory().total / 2**30, 1)
    except Exception:  # noqa: BLE001 - optional detail
        pass
    try:
        import torch

        info["torch_threads"] = torch.get_num_threads()
        info["cuda_available"] = bool(torch.cuda.is_available())
        info["gpu"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
        info["gpu_count"] = torch.cuda.device_count() if torch.cuda.is_available() else 0
        info["cuda_version"] = torch.version.cuda
    except Exception:  # noqa: BLE001 - torch is optional for the record
        info["torch_threads"] = None
        info["gpu"] = None
    return info


__all__ = ["Stage", "StageContext", "StageResult", "StageRunner", "code_digest", "config_hash", "package_versions",
           "hardware_info", "DONE", "STARTED", "RUN_RECORD"]
