"""`raoutcome msasss corners`: corners of lateral spine films in a folder (DICOM / PNG / JPEG), QC, overlays;
and the search for a real lateral spine set in ../shared/data (skipped cleanly when there is none)."""
from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image
from typer.testing import CliRunner

from raoutcome.anatomy import LANDMARK_TEMPLATES
from raoutcome.cli import app
from raoutcome.imaging.io import read_image
from raoutcome.workflows.spine_films import detect_film_corners, lateral_spine_sets, list_films

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
TINY = dict(backbone="mobilenetv3_small_050", out_indices=(1, 2, 3), decoder=8)


def _cohort(path: Path, seed: int, n: int = 2, size: int = 96) -> Path:
    from raoutcome.synth.config import VisitsConfig
    from raoutcome.synth.spine_cohort import simulate_spine
    from raoutcome.synth.spine_course import SpineCohortConfig

    cfg = SpineCohortConfig(image_size=size, n_patients=n, seed=seed,
                            visits=VisitsConfig(times_years=(0.0,), jitter_years=0.0, dropout=0.0))
    return simulate_spine(out_dir=path, config=cfg)


@pytest.fixture(scope="module")
def films(tmp_path_factory):
    """Three lateral cervical phantom films as modalities write them: a 16-bit PNG, an 8-bit JPEG in a
    subfolder, a DICOM with a bare file name; plus a text file and a hidden file that are not films."""
    from raoutcome.synth.writer import write_dicom

    root = tmp_path_factory.mktemp("films")
    cohort = Path(_cohort(root / "cohort", seed=3))
    src = sorted((cohort / "images").rglob("*_spine_cervical.png"))
    folder = root / "films"
    (folder / "sub").mkdir(parents=True)
    shutil.copy(src[0], folder / "a.png")
    grey = read_image(src[1]).pixels
    Image.fromarray(np.round(grey * 255).astype(np.uint8)).save(folder / "sub" / "b.jpg", quality=95)
    write_dicom(folder / "IM0001", grey, seed=1, patient_id="X", sex="F", visit_id="v0", view="spine_cervical",
                study_date=dt.date(2020, 1, 1), pixel_spacing_mm=0.5, age_years=40.0)
    (folder / "notes.txt").write_text("not a film")
    (folder / ".hidden.png").write_bytes(b"junk")
    return folder


@pytest.fixture(scope="module")
def random_detector(tmp_path_factory):
    """Untrained spine detector (random weights): checks the plumbing, not the accuracy."""
    import torch

    from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, channel_names, save_detector
    from raoutcome.msasss import SPINE_VIEWS

    torch.manual_seed(0)
    spec = DetectorSpec(size=64, channels=channel_names(SPINE_VIEWS), **TINY)
    return save_detector(LandmarkNet(spec).eval(), tmp_path_factory.mktemp("det") / "spine.safetensors")


def test_list_films_reads_dicom_png_jpeg_and_skips_the_rest(films):
    found = [p.relative_to(films).as_posix() for p in list_films(films)]
    assert found == ["IM0001", "a.png", "sub/b.jpg"]
    assert {read_image(films / f).meta["format"] for f in found} == {"dicom", "png", "jpeg"}


def test_corners_cli_writes_landmarks_qc_and_overlays(films, random_detector, tmp_path):
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["msasss", "corners", "--images", str(films), "--detector", str(random_detector),
                                 "--view", "spine_cervical", "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "on 3 films" in r.output
    lm = pd.read_csv(out / "landmarks.csv")
    assert list(lm.columns) == ["path", "landmark", "x", "y", "confidence", "qc"]
    assert set(lm["path"]) == {"IM0001", "a.png", "sub/b.jpg"}
    assert set(lm["landmark"]) <= set(LANDMARK_TEMPLATES["spine_cervical"])
    qc = pd.read_csv(out / "qc.csv")
    assert list(qc["path"]) == ["IM0001", "a.png", "sub/b.jpg"] and (qc["view"] == "spine_cervical").all()
    assert (qc["flags"] != "ok").all()  # an untrained detector is not confident: QC says so
    for _, row in qc.iterrows():
        pix = read_image(films / row["path"]).pixels
        mine = lm[lm["path"] == row["path"]]
        assert (row["rows"], row["columns"]) == pix.shape and row["landmarks"] == len(mine)
        assert mine["x"].between(-0.5, pix.shape[1] - 0.5).all() and mine["y"].between(-0.5, pix.shape[0] - 0.5).all()
        over = np.asarray(Image.open(out / "overlays" / (row["path"].replace("/", "__") + ".png")))
        assert over.shape == (*pix.shape, 3)
        coloured = (over.max(-1).astype(int) - over.min(-1)) > 30
        # the film is kept in grey away from the marks, and every drawn landmark has colour next to it
        assert np.abs(over[..., 0][~coloured] / 255.0 - pix[~coloured]).max() < 0.01
        yy, xx = np.nonzero(coloured)
        for x, y in zip(mine["x"], mine["y"]):
            assert (np.hypot(xx - x, yy - y) <= 3.5).any(), (row["path"], x, y)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary left behind


def test_corners_cli_bad_input_exits_2_naming_file_and_value(films, random_detector, tmp_path):
    run = CliRunner().invoke
    bad = tmp_path / "bad"
    shutil.copytree(films, bad)
    (bad / "sub" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"\0" * 20)
    out = tmp_path / "out"
    args = ["msasss", "corners", "--detector", str(random_detector), "--out", str(out)]
    r = run(app, args + ["--images", str(bad), "--view", "spine_cervical"])
    assert r.exit_code == 2 and "broken.png" in r.output and "Traceback" not in r.output
    assert not out.exists() or not any(out.iterdir())  # nothing written
    r = run(app, args + ["--images", str(films), "--view", "hand"])
    assert r.exit_code == 2 and "'hand'" in r.output
    r = run(app, args + ["--images", str(tmp_path / "nowhere"), "--view", "spine_lumbar"])
    assert r.exit_code == 2 and "nowhere" in r.output
    r = run(app, ["msasss", "corners", "--images", str(films), "--detector", str(tmp_path / "no.safetensors"),
                  "--view", "spine_lumbar", "--out", str(out)])
    assert r.exit_code == 2 and "no.safetensors" in r.output
    hand = _hand_detector(tmp_path / "hand.safetensors")
    r = run(app, ["msasss", "corners", "--images", str(films), "--detector", str(hand), "--view", "spine_lumbar",
                  "--out", str(out)])
    assert r.exit_code == 2 and "'spine_lumbar'" in r.output and "Traceback" not in r.output


def _hand_detector(path: Path) -> Path:
    import torch

    from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, save_detector

    torch.manual_seed(0)
    return save_detector(LandmarkNet(DetectorSpec(size=64, **TINY)).eval(), path)


def test_lateral_spine_sets_by_readme_and_folder_name(tmp_path):
    for name in ("real-hands", "cspine-mri", "neck-films", "lumbar-lateral-xray", "spine_ct_lateral"):
        (tmp_path / name).mkdir()
    (tmp_path / "README.md").write_text(
        "# data\n\n## real-hands/\n- PNG hand radiographs, posteroanterior.\n\n"
        "## neck-films/\n- 20 lateral cervical spine radiographs (DICOM), patients with AS.\n\n"
        "## cspine-mri/\n- One cervical-spine MRI subject, lateral view of the cord (NIfTI).\n")
    assert lateral_spine_sets(tmp_path) == [(tmp_path / "lumbar-lateral-xray", "spine_lumbar"),
                                            (tmp_path / "neck-films", "spine_cervical")]
    assert lateral_spine_sets(tmp_path / "absent") == []


def test_real_lateral_spine_films_if_present(request, tmp_path):
    """Real films: every film of each lateral spine set under ../shared/data is read, its corners detected
    (untrained detector: the reading, QC and drawing on real pixels, not the accuracy), and drawn."""
    sets = lateral_spine_sets(DATA)
    if not sets:
        pytest.skip(f"no lateral spine radiograph set in {DATA}: looked for a folder whose name says lateral / "
                    "x-ray / radiograph of the cervical or lumbar spine, or a README.md section describing lateral "
                    "spine radiographs (MRI / CT / NIfTI sets such as cspine-mri do not count)")
    random_detector = request.getfixturevalue("random_detector")
    for folder, view in sets:
        view = view if view != "spine" else "spine_cervical"
        run = detect_film_corners(folder, random_detector, view, tmp_path / folder.name)
        assert len(run.qc) == len(list_films(folder)) and all(p.is_file() for p in run.overlays)


@pytest.mark.slow
def test_trained_detector_finds_phantom_corners_in_a_folder(tmp_path):
    """A tiny detector trained on phantom spines (seed 5) puts the corners of other phantom films (seed 6),
    read from a plain folder, closer to the truth than an untrained one, and QC passes more of them."""
    from raoutcome.msasss import SPINE_VIEWS
    from raoutcome.workflows.landmarks import fit_from_cohorts

    train = _cohort(tmp_path / "train", seed=5, n=24, size=128)
    det = tmp_path / "spine.safetensors"
    fit_from_cohorts([train], det, steps=250, batch=8, size=128, pretrained=None, parts=SPINE_VIEWS,
                     backbone=TINY["backbone"], log=lambda *_: None)
    test = Path(_cohort(tmp_path / "test", seed=6, n=4, size=128))
    folder = tmp_path / "films"
    folder.mkdir()
    for p in sorted((test / "images").rglob("*_spine_lumbar.png")):
        shutil.copy(p, folder / p.name)
    truth = pd.read_csv(test / "landmarks.csv")
    truth["path"] = truth["path"].str.rsplit("/", n=1).str[-1]

    def error(run) -> float:
        both = run.landmarks.merge(truth, on=["path", "landmark"], suffixes=("", "_t"))
        return float(np.hypot(both["x"] - both["x_t"], both["y"] - both["y_t"]).median())

    trained = detect_film_corners(folder, det, "spine_lumbar", tmp_path / "out")
    untrained = detect_film_corners(folder, _random_spine(tmp_path / "r.safetensors"), "spine_lumbar",
                                    tmp_path / "out_r")
    assert error(trained) < 0.5 * error(untrained), (error(trained), error(untrained))
    assert (trained.landmarks["qc"] == "ok").mean() > (untrained.landmarks["qc"] == "ok").mean()


def _random_spine(path: Path) -> Path:
    import torch

    from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, channel_names, save_detector
    from raoutcome.msasss import SPINE_VIEWS

    torch.manual_seed(0)
    return save_detector(LandmarkNet(DetectorSpec(size=128, channels=channel_names(SPINE_VIEWS), **TINY)).eval(),
                         path)
