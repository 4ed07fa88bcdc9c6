"""``raoutcome attribute``: attribution maps of a trained run, summarised over anatomical regions.

For up to ``max_images`` radiographs of a cohort (one per patient first, then a second per patient,
... — a seeded choice, so the patient bootstrap has as many patients as possible), every head is
attributed with one method (:mod:`raoutcome.attribution.methods`). Models: a patient the run was
cross-fitted on (listed in its ``cv_predictions.nc``) is attributed by the fold model(s) that never saw
that patient — attribution on held-out images, as the out-of-fold predictions, and a third of the cost;
any other patient (a new cohort) by all the run's models, averaged. Each image gets its region map (:mod:`raoutcome.attribution.regions`:
simulator truth, else landmarks, else the foreground fallback) in the model's input frame, and the
region statistics (:mod:`raoutcome.attribution.stats`) are computed.

Output folder (written to a temporary folder beside it, then renamed into place):

- ``regions.csv`` — one row per image × head × region: area, mass, shares, density, relative density
  (plus ``models``: ``fold k`` or ``ensemble``).
- ``summary.csv`` — one row per head × region: pooled relative density, ratio to the SvdH sites with
  a 95 % patient-bootstrap CI, attribution and area shares outside the SvdH sites.
- ``maps.nc`` — xarray Dataset (netCDF): ``attribution`` (image × head × y × x), ``radiograph`` and
  ``region`` (image × y × x), with patient_id / visit_id / view / region_source per image.
- ``overlays/<image>.png`` — the radiograph and one heat-map panel per head, SvdH sites outlined.
- ``attribution.json`` — method, settings, run, heads, image count, region sources.
"""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np
import pandas as pd

from raoutcome.errors import ConfigError, InputError, RegionFallbackWarning
from raoutcome.io_utils import atomic_path

MARKER = "attribution.json"
DEFAULT_SIZE = 256


def select_images(images: pd.DataFrame, max_images: int, seed: int = 0) -> pd.DataFrame:
    """At most ``max_images`` rows: one image of each patient (random order) before any second one."""
    if images.empty:
        raise InputError("cohort has no images to attribute")
    rng = np.random.default_rng(seed)
    frame = images.reset_index(drop=True)
    frame = frame.iloc[rng.permutation(len(frame))]
    patients = frame["patient_id"].drop_duplicates()
    patient_rank = pd.Series(np.arange(len(patients)), index=patients.to_numpy())
    order = pd.DataFrame({"within": frame.groupby("patient_id").cumcount().to_numpy(),
                          "patient": patient_rank.loc[frame["patient_id"]].to_numpy()}, index=frame.index)
    chosen = order.sort_values(["within", "patient"]).index[:max_images]
    return frame.loc[chosen].sort_values(["patient_id", "visit_id", "view"]).reset_index(drop=True)


def preprocessing(config) -> dict:
    """Image size, contrast percentiles and pad value the run was trained with.

    ``config`` is the run's config (a ``TrainConfig``, whose ``.values`` are read, or a plain mapping):
    ``[model] image_size`` and ``[data] contrast`` / ``pad_value``, as the trainer's image cache uses them.
    """
    values = config.values if isinstance(getattr(config, "values", None), Mapping) else config  # TrainConfig
    if not isinstance(values, Mapping):
        raise ConfigError(f"run config: expected a mapping of tables, got {type(config).__name__}")
    model, data = values.get("model", {}), values.get("data", {})
    size = model.get("image_size", values.get("image_size", DEFAULT_SIZE))
    contrast = data.get("contrast") or None
    return {"size": int(size), "contrast": tuple(contrast) if contrast else None,
            "pad_value": float(data.get("pad_value", 0.0))}


def _image_name(path: str) -> str:
    return Path(path).with_suffix("").as_posix().replace("/", "__")


def _landmarks_of(cohort, path: str):
    table = getattr(cohort, "landmarks", None)
    if table is None or table.empty:
        return None
    rows = table[table["path"] == path]
    return rows if len(rows) else None


def prepare_images(cohort, rows: pd.DataFrame, size: int, contrast=None, pad_value: float = 0.0,
                   progress: bool = True) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Model inputs ``(N,size,size)``, region labels ``(N,size,size)`` and each image's region source."""
    from raoutcome.analysis.truth import read_truth
    from raoutcome.attribution.regions import model_frame_regions
    from raoutcome.imaging import read_image
    from raoutcome.imaging.transforms import preprocess

    x = np.zeros((len(rows), size, size), dtype=np.float32)
    labels = np.zeros((len(rows), size, size), dtype=np.uint8)
    sources = []
    truth = read_truth(cohort.root, visits=False)
    it = rows.itertuples()
    if progress:
        from raoutcome.progress import tqdm
        it = tqdm(it, total=len(rows), desc="images and regions", unit="image")
    for i, row in enumerate(it):
        path = cohort.image_path(row.path)
        pixels = read_image(path).pixels
        x[i] = preprocess(pixels, row.view, size, contrast=contrast, pad_value=pad_value)
        rm = model_frame_regions(pixels, row.view, size, label_map_path=truth.region_map(row.path),
                                 landmarks=_landmarks_of(cohort, row.path), name=str(row.path), warn=False)
        labels[i] = rm.labels
        sources.append(rm.source)
    n_fallback = sources.count("fallback")
    if n_fallback:
        warnings.warn(f"{n_fallback} of {len(rows)} images have neither a truth region map nor landmarks: their "
                      "regions fall back to foreground/background only (add a `landmarks` table to the cohort)",
                      RegionFallbackWarning, stacklevel=2)
    return x, labels, sources


def _check_out_dir(out_dir: Path) -> None:
    if out_dir.exists() and (not out_dir.is_dir() or (any(out_dir.iterdir()) and not (out_dir / MARKER).exists())):
        raise InputError(f"{out_dir}: exists and is not an attribution folder; choose a new or empty folder "
                         "(an earlier attribution output is replaced)")


def attribute(run_dir, cohort, out_dir, method: str = "integrated_gradients", max_images: int = 64,
              heads: Sequence[str] | None = None, settings: Mapping | None = None, device=None,
              batch_size: int = 8, n_boot: int = 2000, seed: int = 0, progress: bool = True) -> Path:
    """Attribute ``max_images`` images of ``cohort`` with the models of ``run_dir``; returns ``out_dir``.

    ``method``: ``integrated_gradients`` | ``gradcam`` | ``occlusion``; ``settings`` overrides the
    method's defaults (see :class:`raoutcome.attribution.methods.AttributionSettings`); ``heads``
    defaults to every head the model has; ``device`` defaults to the GPU when present. A site-route run
    (``[model] route = "sites"``) gets its joint atlas instead (:mod:`raoutcome.workflows.site_attribution`,
    at most ``max_images / 4`` patches per joint).
    """
    from raoutcome.attribution import methods, stats

    if method not in methods.METHODS:
        raise InputError(f"unknown attribution method {method!r}; expected one of {', '.join(methods.METHODS)}")
    if int(max_images) < 1:
        raise InputError(f"max_images must be at least 1, got {max_images}")
    try:
        s = methods.settings_from(method, settings)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"attribution settings: {err}") from err
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    if not run_dir.is_dir():
        raise InputError(f"{run_dir}: run folder not found (train one with `raoutcome train`)")
    _check_out_dir(out_dir)
    if any(run_dir.glob("fold_*/site_model.pt")):  # a site-route run: per-site maps pooled over the joint atlas
        from raoutcome.workflows.site_attribution import attribute_sites

        return attribute_sites(run_dir, cohort, out_dir, method, max_per_joint=max(1, int(max_images) // 4),
                               seed=seed)
    models, config = load_run(run_dir)
    prep = preprocessing(config)
    rows = select_images(cohort.images, int(max_images), seed)
    available = methods.model_heads(models[0], rows["view"].iloc[0], size=prep["size"], device=device)
    heads = list(heads) if heads is not None else available
    missing = sorted(set(heads) - set(available))
    if missing:
        raise InputError(f"run {run_dir} has no head(s) {missing} (heads: {', '.join(available)})")
    x, labels, sources = prepare_images(cohort, rows, prep["size"], prep["contrast"], prep["pad_value"], progress)
    fold = assign_folds(models, rows["patient_id"], fold_of_patients(run_dir))
    maps = {h: np.zeros_like(x) for h in heads}
    for k in np.unique(fold):
        idx = np.flatnonzero(fold == k)
        chosen = models if k < 0 else [m for m in models if getattr(m, "fold", None) == k]
        part = methods.attribute_images(chosen, x[idx], list(rows["view"].iloc[idx]), heads, s, device=device,
                                        batch_size=batch_size, progress=progress)
        for h in heads:
            maps[h][idx] = part[h]
    used = pd.Series([f"fold {k}" if k >= 0 else "ensemble" for k in fold])
    ident = rows[["patient_id", "visit_id", "view"]].assign(image=rows["path"], region_source=sources,
                                                            models=used.to_numpy())
    table = stats.region_table(maps, labels, ident)
    summary = stats.summarise(table, heads, n_boot=n_boot, seed=seed)
    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        _write_outputs(tmp, rows, x, labels, sources, maps, table, summary, progress)
        meta = {"method": method, "settings": asdict(s), "run": str(run_dir), "heads": heads,
                "n_images": len(rows), "n_models": len(models), "image_size": prep["size"],
                "region_sources": pd.Series(sources).value_counts().to_dict(),
                "models_used": used.value_counts().to_dict(), "seed": seed, "n_boot": n_boot}
        (tmp / MARKER).write_text(json.dumps(meta, indent=2))
    return out_dir


def fold_of_patients(run_dir: Path) -> dict[str, int]:
    """patient_id -> the cross-fitting fold whose model never saw the patient (from ``cv_predictions.nc``)."""
    path = Path(run_dir) / "cv_predictions.nc"
    if not path.exists():
        return {}
    from raoutcome.predictions import load_predictions

    ds = load_predictions(path)
    if "fold" not in ds:
        return {}
    return {str(p): int(f) for p, f in zip(ds["patient_id"].values, ds["fold"].values) if int(f) >= 0}


def assign_folds(models, patient_ids: pd.Series, folds: Mapping[str, int]) -> np.ndarray:
    """Per image, the fold whose models attribute it — the fold models that never saw the patient — when
    the run is cross-fitted on that patient; -1 (all models, averaged) otherwise."""
    have = {getattr(m, "fold", None) for m in models}
    return np.array([folds[p] if p in folds and folds[p] in have else -1 for p in patient_ids.astype(str)])


def load_run(run_dir: Path):
    """The run's models and config (``raoutcome.training.load_run``)."""
    from raoutcome.training import load_run as _load_run

    return _load_run(run_dir)


def maps_dataset(rows: pd.DataFrame, x: np.ndarray, labels: np.ndarray, sources: list[str],
                 maps: Mapping[str, np.ndarray]):
    """The maps as an xarray Dataset: attribution (image × head × y × x), radiograph and region."""
    import xarray as xr

    from raoutcome.anatomy import REGIONS

    heads = list(maps)
    attr = np.stack([maps[h] for h in heads], axis=1).astype(np.float32)
    return xr.Dataset(
        {"attribution": (("image", "head", "y", "x"), attr),
         "radiograph": (("image", "y", "x"), x.astype(np.float32)),
         "region": (("image", "y", "x"), labels.astype(np.uint8))},
        coords={"image": rows["path"].astype(str).to_numpy(), "head": heads,
                "patient_id": ("image", rows["patient_id"].astype(str).to_numpy()),
                "visit_id": ("image", rows["visit_id"].astype(str).to_numpy()),
                "view": ("image", rows["view"].astype(str).to_numpy()),
                "region_source": ("image", np.asarray(sources, dtype=str))},
        attrs={"region_codes": json.dumps(REGIONS)},
    )


def _write_outputs(folder: Path, rows, x, labels, sources, maps, table, summary, progress: bool) -> None:
    from raoutcome.reporting.attribution_figures import attribution_overlay_figure, save_figure

    table.to_csv(folder / "regions.csv", index=False)
    summary.to_csv(folder / "summary.csv", index=False)
    ds = maps_dataset(rows, x, labels, sources, maps)
    enc = {v: {"zlib": True, "complevel": 4} for v in ds.data_vars}
    ds.to_netcdf(folder / "maps.nc", engine="h5netcdf", encoding=enc)
    (folder / "overlays").mkdir()
    it = range(len(rows))
    if progress:
        from raoutcome.progress import tqdm
        it = tqdm(it, desc="overlays", unit="image")
    for i in it:
        r = rows.iloc[i]
        fig = attribution_overlay_figure(x[i], {h: m[i] for h, m in maps.items()}, labels[i],
                                         title=f"{r['patient_id']} {r['visit_id']} {str(r['view']).replace('_', ' ')} "
                                               f"({sources[i]} regions)")
        save_figure(fig, folder / "overlays" / f"{_image_name(r.path)}.png")
