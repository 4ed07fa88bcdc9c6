"""Round trip against a real PACS: a throwaway Orthanc on 127.0.0.1 (Debian ``orthanc`` +
``orthanc-dicomweb``), hospital-like DICOMs with sentinel text in every identifying attribute,
``pacs pull`` and ``pacs score`` over DICOMweb and DIMSE, SRs read back from the server with pydicom
and highdicom and checked value by value against the Predictions they came from.

Skipped, with the reason, when Orthanc or the ``[pacs]`` extra is missing (``.ci/run`` installs them).
Every network call is bounded (client timeouts, subprocess timeouts) and only talks to 127.0.0.1.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("highdicom", reason="the [pacs] extra (highdicom, dicomweb-client, pynetdicom) is not installed")
pytest.importorskip("dicomweb_client", reason="the [pacs] extra is not installed")
pytest.importorskip("pynetdicom", reason="the [pacs] extra is not installed")

from raoutcome.interop import testserver  # noqa: E402

_REASON = testserver.available()
pytestmark = pytest.mark.skipif(_REASON is not None, reason=f"PACS round-trip tests need Orthanc: {_REASON}; "
                                                            f".ci/run installs it when run as root")

import pydicom  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402
from typer.testing import CliRunner  # noqa: E402

from conftest import TINY_MODEL_TOML, write_tiny_cohort  # noqa: E402
from raoutcome.cli import app  # noqa: E402
from raoutcome.interop.private import PrivateStore  # noqa: E402
from raoutcome.interop.results import visit_result  # noqa: E402
from raoutcome.interop.sr import read_report  # noqa: E402
from raoutcome.predictions import load_predictions  # noqa: E402

SR_CLASS = "1.2.840.10008.5.1.4.1.1.88.34"  # Comprehensive 3D SR
BIRTH = "19230417"
STUDY_DATES: list[str] = []
TRAIN = TINY_MODEL_TOML + """[train]
epochs = 1
batch_patients = 2
num_workers = 0
val_fraction = 0.25
[cv]
folds = 1
[data]
cache_dir = "{cache}"
"""


def _planted(ds: Dataset, tmp: Path) -> Dataset:
    """``ds`` with a sentinel in every attribute of the PS3.15 basic profile (tests/deid_profile.py, planted
    by test_no_identifying_data.plant), then the keys a PACS needs put back: the UIDs, Patient ID and
    Study Date (themselves checked as forbidden text)."""
    from test_no_identifying_data import plant

    keep = {k: ds.get(k) for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "PatientID",
                                   "StudyDate")}
    path = tmp / f"{ds.SOPInstanceUID}.dcm"
    ds.save_as(path, enforce_file_format=True)
    plant(path)
    out = pydicom.dcmread(path)
    path.unlink()
    for k, v in keep.items():
        setattr(out, k, v)
    out.file_meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    return out


def _instance(patient: int, study_uid: str, date: str, view: str | None, modality: str = "DX",
              body: str = "HAND") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.4" if modality == "MR" else "1.2.840.10008.5.1.4.1.1.1.1"
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID
    ds.SOPInstanceUID = generate_uid()
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
    ds.StudyInstanceUID, ds.SeriesInstanceUID = study_uid, generate_uid()
    ds.PatientName, ds.PatientID = f"ZQSENTNAME^P{patient}", f"ZQMRN{patient}"
    ds.PatientBirthDate, ds.PatientSex, ds.StudyDate, ds.StudyTime = BIRTH, "F", date, "101500"
    ds.Modality, ds.BodyPartExamined, ds.ViewPosition = modality, body, "PA"
    if view is not None:
        ds.ImageLaterality = "L" if view.endswith("left") else "R"
    rng = np.random.default_rng(patient * 100 + int(date[-2:]))
    ds.Rows = ds.Columns = 48
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelSpacing = [0.2, 0.2]
    ds.PixelData = rng.integers(0, 4096, (48, 48), dtype=np.uint16).tobytes()
    return ds


def _hospital(n_patients: int = 3, n_visits: int = 2):
    """Instances as a hospital PACS holds them, and {study UID: patient ID}."""
    out, studies = [], {}
    for p in range(1, n_patients + 1):
        for v in range(n_visits):
            uid, date = generate_uid(), f"20{18 + v}0{p}1{v}"
            studies[uid] = f"ZQMRN{p}"
            STUDY_DATES.append(date)
            for view in ("hand_left", "hand_right"):
                out.append(_instance(p, uid, date, view))
            if p == 1 and v == 0:
                out.append(_instance(p, uid, date, "hand_left", body="CHEST"))   # not scored
                out.append(_instance(p, uid, date, None))                        # no laterality
                out.append(_instance(p, uid, date, "hand_left", modality="MR"))  # MR
    chest_uid = generate_uid()  # a study with nothing usable
    studies[chest_uid] = "ZQMRN1"
    out.append(_instance(1, chest_uid, "20210601", "hand_left", body="CHEST"))
    return out, studies


def _bytes(ds: Dataset) -> bytes:
    import io

    buf = io.BytesIO()
    ds.save_as(buf, enforce_file_format=True)
    return buf.getvalue()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    from raoutcome.cohort import load
    from raoutcome.training import train_run

    tmp = tmp_path_factory.mktemp("pacs_run")
    cohort = write_tiny_cohort(tmp / "cohort", n_patients=6, n_visits=2, size=32)
    (tmp / "train.toml").write_text(TRAIN.format(cache=tmp / "cache"))
    return train_run(load(cohort), tmp / "train.toml", tmp / "run")


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    instances, studies = _hospital()
    tmp = tmp_path_factory.mktemp("plant")
    with testserver.Orthanc(start_timeout_s=30) as server:
        for ds in instances:
            server.upload_bytes(_bytes(_planted(ds, tmp)))
        server.studies = studies
        yield server


@pytest.fixture
def creds(pacs, monkeypatch):
    monkeypatch.setenv("RAOUTCOME_PACS_USER", pacs.user)
    monkeypatch.setenv("RAOUTCOME_PACS_PASSWORD", pacs.password)
    monkeypatch.delenv("RAOUTCOME_PACS_CREDENTIALS", raising=False)
    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)


def _identifying_strings(pacs) -> list[bytes]:
    """Every planted sentinel (bar those put back), the patient IDs, study UIDs and study dates."""
    from test_no_identifying_data import sentinel_values, tokens

    restored = {sentinel_values()[k][1] for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                                  "PatientID", "StudyDate")}
    found = [t.encode() for t in tokens() if t not in restored]
    found += [b"ZQSENTNAME", b"ZQMRN", BIRTH.encode()] + [d.encode() for d in set(STUDY_DATES)]
    assert len(found) > 150  # the whole basic profile
    return found + [uid.encode() for uid in pacs.studies]


def _assert_clean(folders, texts, forbidden):
    for folder in folders:
        for path in Path(folder).rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                leaked = [f for f in forbidden if f in data]
                assert not leaked, f"{path}: identifying text {leaked[:3]} in an output"
    for text in texts:
        leaked = [f for f in forbidden if f in text.encode()]
        assert not leaked, f"identifying text {leaked[:3]} printed"


def _srs(pacs, study_uid):
    return [i for i in pacs.instances_of_study(study_uid) if i["MainDicomTags"].get("SOPClassUID", SR_CLASS) == SR_CLASS
            and pacs.get(f"/instances/{i['ID']}/simplified-tags").get("Modality") == "SR"]


def test_pull_dicomweb_writes_a_pseudonymised_valid_cohort(pacs, creds, tmp_path):
    from raoutcome.cohort import load

    res = CliRunner().invoke(app, ["pacs", "pull", "--server", pacs.dicomweb_url, "--out", str(tmp_path / "c"),
                                   "--since", "2017-01-01", "--timeout", "30"])
    assert res.exit_code == 0, res.output
    cohort = load(tmp_path / "c")
    assert len(cohort.patients) == 3 and len(cohort.visits) == 6 and len(cohort.images) == 12
    assert sorted(cohort.visits.groupby("patient_id").time_years.min()) == [0, 0, 0]
    unusable = (tmp_path / "c" / "unusable.csv").read_text()
    assert "body part CHEST is not scored" in unusable and "no ImageLaterality" in unusable and "MR instance" in unusable
    private = tmp_path / "c.private"
    assert oct(private.stat().st_mode & 0o777) == "0o700"
    assert all(oct(f.stat().st_mode & 0o777) == "0o600" for f in private.iterdir() if f.is_file()
               and not f.name.endswith(("-wal", "-shm")))
    assert "ZQMRN1" in (private / "mapping.csv").read_text()  # the mapping, kept apart
    # study -> visit by date: time_years = days since the patient's first study / 365.25
    import pandas as pd

    mapping = pd.read_csv(private / "mapping.csv", dtype=str).set_index("study_key")
    visits = cohort.visits.assign(date=lambda v: pd.to_datetime(mapping.loc[v.visit_id, "study_date"].to_numpy()))
    first = visits.groupby("patient_id").date.transform("min")
    assert np.allclose(visits.time_years, (visits.date - first).dt.days / 365.25, atol=1e-4)
    assert (visits.time_years > 0.9).sum() == 3  # each patient's second study, a year later
    _assert_clean([tmp_path / "c"], [res.output], _identifying_strings(pacs))
    # resumable: a second pull fetches nothing new and writes the same manifest
    before = (tmp_path / "c" / "images.csv").read_text()
    res = CliRunner().invoke(app, ["pacs", "pull", "--server", pacs.dicomweb_url, "--out", str(tmp_path / "c")])
    assert res.exit_code == 0 and (tmp_path / "c" / "images.csv").read_text() == before


@pytest.mark.parametrize("retrieve", ["get", "move"])
def test_pull_dimse_gives_the_same_cohort(pacs, creds, tmp_path, retrieve):
    from raoutcome.interop.credentials import server_spec
    from raoutcome.interop.pull import pull

    web = pull(server_spec(pacs.dicomweb_url), tmp_path / "web", private=tmp_path / "priv")
    dimse = pull(server_spec(pacs.dimse_url(retrieve), timeout_s=30), tmp_path / "dimse", private=tmp_path / "priv")
    assert (dimse.studies, dimse.images, dimse.unusable) == (web.studies, web.images, web.unusable) == (6, 12, 4)
    for name in ("visits.csv", "images.csv"):
        assert (tmp_path / "web" / name).read_text() == (tmp_path / "dimse" / name).read_text()
    for rel in (tmp_path / "web" / "images.csv").read_text().splitlines()[1:]:
        path = rel.split(",")[-1]
        assert (tmp_path / "web" / path).read_bytes() == (tmp_path / "dimse" / path).read_bytes()


def test_score_stores_one_sr_per_study_matching_the_predictions(pacs, creds, run_dir, tmp_path):
    state, fhir, preds = tmp_path / "state", tmp_path / "fhir", tmp_path / "preds"
    args = ["pacs", "score", "--run", str(run_dir), "--server", pacs.dicomweb_url, "--state", str(state),
            "--fhir", str(fhir), "--predictions-out", str(preds), "--chunk", "3", "--timeout", "30"]
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "6 SR stored" in res.output and "1 without a usable image" in res.output
    store = PrivateStore(state)
    predictions = [load_predictions(p) for p in sorted(preds.glob("*.nc"))]
    checked = 0
    for study_uid, mrn in pacs.studies.items():
        srs = _srs(pacs, study_uid)
        key = store.study_key(study_uid)
        if store.scored_status(key) == "unusable":
            assert srs == []
            continue
        assert len(srs) == 1
        ds = pydicom.dcmread(__import__("io").BytesIO(pacs.file(srs[0]["ID"])))
        assert ds.PatientID == mrn and ds.StudyInstanceUID == study_uid  # filed in the patient's study
        back = read_report(ds)
        assert back["verification"] == "UNVERIFIED" and back["algorithm"][0] == "raoutcome"
        pseudo = store.pseudonym(mrn)
        [pred] = [p for p in predictions if key in p["visit_id"].values]
        expected = visit_result(pred, pseudo, key)
        assert back["outcomes"] == expected.outcomes and set(expected.outcomes) >= {"svdh", "haq", "risk"}
        assert (fhir / f"{key}.json").exists()
        checked += 1
    assert checked == 6
    store.close()
    _assert_clean([fhir, preds], [res.output], _identifying_strings(pacs))
    # idempotent: a rerun stores nothing and the server still holds one SR per study
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0 and "0 SR stored" in res.output and "7 done before" in res.output
    assert all(len(_srs(pacs, uid)) <= 1 for uid in pacs.studies)


def test_lost_ledger_recovers_from_the_server_without_a_second_sr(pacs, creds, run_dir, tmp_path):
    from raoutcome.interop.credentials import server_spec
    from raoutcome.interop.score import score

    spec = server_spec(pacs.dicomweb_url, timeout_s=30)
    first = score(run_dir, spec, state=tmp_path / "s1", chunk=8)
    second = score(run_dir, spec, state=tmp_path / "s2", chunk=8)  # a fresh ledger: SRs found on the server
    assert first.stored + first.recovered == 6 and second.recovered == 6 and second.stored == 0
    assert all(len(_srs(pacs, uid)) <= 1 for uid in pacs.studies)


def test_sharded_ranks_score_disjoint_studies(pacs, creds, run_dir, tmp_path, monkeypatch):
    from raoutcome.interop.credentials import server_spec
    from raoutcome.interop.score import score

    with testserver.Orthanc(start_timeout_s=30) as fresh:
        instances, studies = _hospital(n_patients=2)
        for ds in instances:
            fresh.upload_bytes(_bytes(ds))
        spec = server_spec(fresh.dicomweb_url, timeout_s=30)
        monkeypatch.setenv("WORLD_SIZE", "2")
        done = []
        for rank in (0, 1):
            monkeypatch.setenv("RANK", str(rank))
            done.append(score(run_dir, spec, state=tmp_path / "state", chunk=8))
        from raoutcome.interop.score import shard_of

        owners = [shard_of(uid, 2) for uid in list(studies)[:-1]]
        assert (done[0].stored, done[1].stored) == (owners.count(0), owners.count(1))
        assert all(len(_srs(fresh, uid)) == (0 if i == len(studies) - 1 else 1) for i, uid in enumerate(studies))


@pytest.mark.slow
def test_kill_halfway_and_rerun_scores_every_study_exactly_once(run_dir, tmp_path):
    with testserver.Orthanc(start_timeout_s=30) as fresh:
        instances, studies = _hospital(n_patients=4)
        for ds in instances:
            fresh.upload_bytes(_bytes(ds))
        env = {**os.environ, "RAOUTCOME_PACS_USER": fresh.user, "RAOUTCOME_PACS_PASSWORD": fresh.password,
               "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
        env.pop("RANK", None), env.pop("WORLD_SIZE", None)
        cmd = [sys.executable, "-m", "raoutcome.cli", "pacs", "score", "--run", str(run_dir), "--server",
               fresh.dicomweb_url, "--state", str(tmp_path / "state"), "--chunk", "1", "--timeout", "30"]
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        deadline, stored = time.monotonic() + 240, 0
        try:
            while time.monotonic() < deadline:
                line = proc.stdout.readline()
                if not line:
                    break
                stored += "SR stored" in line
                if stored == 2:
                    proc.send_signal(signal.SIGKILL)
                    break
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait(timeout=30)
        assert stored == 2, "the first run should have stored two SRs before the kill"
        rerun = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert rerun.returncode == 0, rerun.stderr[-2000:]
        n_sr = [len(_srs(fresh, uid)) for uid in studies]
        assert n_sr == [1] * (len(studies) - 1) + [0]  # every scoreable study exactly once; the chest study none
        store = PrivateStore(tmp_path / "state")
        status = [store.scored_status(store.study_key(uid)) for uid in studies]
        assert status == ["stored"] * (len(studies) - 1) + ["unusable"]


@pytest.mark.slow
def test_torchrun_two_processes_share_the_studies(run_dir, tmp_path):
    with testserver.Orthanc(start_timeout_s=30) as fresh:
        instances, studies = _hospital(n_patients=2)
        for ds in instances:
            fresh.upload_bytes(_bytes(ds))
        env = {**os.environ, "RAOUTCOME_PACS_USER": fresh.user, "RAOUTCOME_PACS_PASSWORD": fresh.password,
               "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src"), "OMP_NUM_THREADS": "1"}
        cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
               "--master_port", str(testserver._free_port()), "-m", "raoutcome.cli", "pacs", "score", "--run-dir",
               str(run_dir), "--server", fresh.dicomweb_url, "--state", str(tmp_path / "state"), "--timeout", "30"]
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=400)
        assert out.returncode == 0, out.stderr[-3000:]
        store = PrivateStore(tmp_path / "state")
        ranks = [store.db.execute("SELECT rank FROM scored WHERE study_key = ?", (store.study_key(uid),)).fetchone()[0]
                 for uid in list(studies)[:-1]]
        from raoutcome.interop.score import shard_of

        assert ranks == [shard_of(uid, 2) for uid in list(studies)[:-1]]  # each study by the rank owning it
        assert [len(_srs(fresh, uid)) for uid in studies] == [1] * (len(studies) - 1) + [0]


def test_score_over_dimse_stores_the_sr_with_c_store(run_dir, tmp_path, monkeypatch):
    from raoutcome.interop.credentials import server_spec
    from raoutcome.interop.score import score

    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with testserver.Orthanc(start_timeout_s=30) as fresh:
        instances, studies = _hospital(n_patients=1)
        for ds in instances:
            fresh.upload_bytes(_bytes(ds))
        summary = score(run_dir, server_spec(fresh.dimse_url("get"), timeout_s=30), state=tmp_path / "state",
                        keep_predictions=tmp_path / "preds")
        assert (summary.stored, summary.unusable, summary.failed) == (2, 1, 0)
        store = PrivateStore(tmp_path / "state")
        [pred] = [load_predictions(p) for p in (tmp_path / "preds").glob("*.nc")]
        for uid in list(studies)[:-1]:
            [sr] = _srs(fresh, uid)
            back = read_report(pydicom.dcmread(__import__("io").BytesIO(fresh.file(sr["ID"]))))
            key = store.study_key(uid)
            assert back["outcomes"] == visit_result(pred, store.pseudonym("ZQMRN1"), key).outcomes



@pytest.mark.slow
def test_history_gives_the_latest_study_the_same_scores_as_predict_on_the_whole_cohort(run_dir, tmp_path,
                                                                                       monkeypatch):
    from raoutcome.cohort import load
    from raoutcome.interop.credentials import server_spec
    from raoutcome.interop.pull import pull
    from raoutcome.interop.score import score
    from raoutcome.training import predict_run

    for var in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(var, raising=False)
    with testserver.Orthanc(start_timeout_s=30) as fresh:
        instances, studies = _hospital(n_patients=2, n_visits=3)
        for ds in instances:
            fresh.upload_bytes(_bytes(ds))
        monkeypatch.setenv("RAOUTCOME_PACS_USER", fresh.user)
        monkeypatch.setenv("RAOUTCOME_PACS_PASSWORD", fresh.password)
        monkeypatch.delenv("RAOUTCOME_PACS_CREDENTIALS", raising=False)
        spec = server_spec(fresh.dicomweb_url, timeout_s=30)
        # the whole cohort, predicted at once (the same private folder: the same pseudonyms and study keys)
        pull(spec, tmp_path / "cohort", private=tmp_path / "private")
        whole = load_predictions(predict_run(run_dir, load(tmp_path / "cohort"), tmp_path / "whole.nc"))
        summary = score(run_dir, spec, state=tmp_path / "private", chunk=1, history=True,
                        keep_predictions=tmp_path / "chunks")
        assert summary.stored == 6 and summary.failed == 0
        chunks = [load_predictions(p) for p in (tmp_path / "chunks").glob("*.nc")]
        store = PrivateStore(tmp_path / "private")
        latest = {}
        for uid, mrn in studies.items():
            row = store.db.execute("SELECT pseudonym, study_date FROM studies WHERE study_key = ?",
                                   (store.study_key(uid),)).fetchone()
            if store.scored_status(store.study_key(uid)) == "stored":
                latest[mrn] = max(latest.get(mrn, ("", "")), (row[1], store.study_key(uid)))
        for mrn, (_date, key) in latest.items():
            pseudo = store.pseudonym(mrn)
            # the chunk that scored it (with its two earlier visits as context); the chest-only study's chunk
            # holds the same three visits as context
            got = [visit_result(c, pseudo, key) for c in chunks if key in c["visit_id"].values]
            assert len(got) >= 1 and all(len(c["visit_id"]) == 3 for c in chunks if key in c["visit_id"].values)
            want = visit_result(whole, pseudo, key).outcomes
            for g in got:
                assert g.outcomes.keys() == want.keys()
                assert np.allclose([g.outcomes[k] for k in want], list(want.values()), rtol=1e-5, atol=1e-6)


# ------------------------------------------------------------------------ site route: landmarks detected on pulled studies
SITE_TRAIN = """[model]
route = "sites"
[sites]
epochs = 1
batch_visits = 4
outcome_epochs = 3
[cv]
folds = 2
[train]
val_fraction = 0.25
num_workers = 0
[data]
cache_dir = "{cache}"
"""


@pytest.fixture(scope="module")
def site_setup(tmp_path_factory):
    """A small simulated cohort (phantom hands with the simulator's landmarks and per-joint readings) and a
    site-route run trained on it."""
    from dataclasses import replace

    from raoutcome.cohort import load
    from raoutcome.synth import simulate
    from raoutcome.synth.config import load_config
    from raoutcome.training import train_run

    tmp = tmp_path_factory.mktemp("pacs_sites")
    cfg = replace(load_config(Path(__file__).resolve().parents[1] / "cohorts" / "demo.toml"), n_patients=8, workers=1)
    cohort = simulate(config=cfg, out_dir=tmp / "cohort", seed=5)
    (tmp / "sites.toml").write_text(SITE_TRAIN.format(cache=tmp / "cache"))
    run = train_run(load(cohort), tmp / "sites.toml", tmp / "run")
    return {"cohort": Path(cohort), "run": Path(run)}


def _phantom_instance(pixels: np.ndarray, patient: int, study_uid: str, date: str, view: str) -> Dataset:
    """A DX instance of the simulated radiograph ``pixels`` (floats in [0, 1]) stored as 12 bits."""
    ds = _instance(patient, study_uid, date, view)
    ds.Rows, ds.Columns = pixels.shape
    ds.PixelData = np.round(np.clip(pixels, 0, 1) * 4095).astype(np.uint16).tobytes()
    return ds


def test_site_route_scores_pulled_studies_from_detected_landmarks(site_setup, tmp_path, monkeypatch):
    """A site-route run scores studies pulled from Orthanc: the landmark detector finds the joints of every
    pulled hand (checked against the simulator's landmarks), the landmark QC keeps a right hand filed as a
    left one from being scored and says so in the SR, and each SR holds per-joint JSN and erosion scores with
    their SDs equal to the Predictions. With ``--overlay erosion`` each scored image (and only those) also gets a
    Secondary Capture of its per-joint erosion scores, equal to the overlay redrawn from the pulled image, the
    detected landmarks and the Predictions."""
    import io

    import pandas as pd

    from raoutcome.interop.joint_overlay import joint_overlays
    from raoutcome.interop.overlay import JOINT_SERIES_DESCRIPTION

    from raoutcome.cohort import load
    from raoutcome.imaging.io import read_image

    cohort = load(site_setup["cohort"])
    truth = cohort.landmarks
    for var in ("RANK", "WORLD_SIZE", "RAOUTCOME_PACS_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    picked = cohort.visits.sort_values(["patient_id", "time_years"]).groupby("patient_id").head(2)
    picked = picked[picked["patient_id"].isin(sorted(cohort.patient_ids)[:2])]
    source: dict[tuple[str, str], tuple[str, str]] = {}  # (study UID, view) -> simulated image path, how stored
    mixed_up = None
    mrn: dict[str, str] = {}
    tmp_plant = tmp_path / "plant"
    tmp_plant.mkdir()
    with testserver.Orthanc(start_timeout_s=30) as fresh:
        for n, row in enumerate(picked.itertuples(index=False)):
            uid, date = generate_uid(), f"20{20 + n % 2}0{1 + n // 2}15"
            STUDY_DATES.append(date)
            for view in ("hand_left", "hand_right"):
                path = cohort.images[(cohort.images.patient_id == row.patient_id) & (cohort.images.visit_id ==
                                                                                     row.visit_id) & (cohort.images.view == view)].path.iloc[0]
                pixels = read_image(cohort.image_path(path)).pixels
                how = "as is"
                if n == 1 and view == "hand_left":  # a right hand filed as a left one (a laterality mix-up)
                    pixels, how, mixed_up = pixels[:, ::-1], "mirrored", uid
                ds = _phantom_instance(pixels, 10 + n // 2, uid, date, view)
                fresh.upload_bytes(_bytes(_planted(ds, tmp_plant)))
                source[(uid, view)] = (path, how)
            mrn[uid] = f"ZQMRN{10 + n // 2}"
        monkeypatch.setenv("RAOUTCOME_PACS_USER", fresh.user)
        monkeypatch.setenv("RAOUTCOME_PACS_PASSWORD", fresh.password)
        state, preds, fhir = tmp_path / "state", tmp_path / "preds", tmp_path / "fhir"
        res = CliRunner().invoke(app, ["pacs", "score", "--run", str(site_setup["run"]), "--server",
                                       fresh.dicomweb_url, "--state", str(state), "--predictions-out", str(preds),
                                       "--fhir", str(fhir), "--chunk", "2", "--timeout", "30", "--overlay",
                                       "erosion"])
        assert res.exit_code == 0, res.output
        assert f"{len(picked)} SR stored" in res.output
        assert f"{2 * len(picked) - 1} overlays stored" in res.output  # every image but the mixed-up one
        store = PrivateStore(state)
        kept = [load_predictions(p) for p in sorted(preds.glob("*.nc"))]
        marks = pd.concat([pd.read_csv(p) for p in sorted(preds.glob("*.landmarks.csv"))], ignore_index=True)
        uids = sorted({u for u, _ in source})
        # 1. the detector found the joints of every correctly filed hand: detected vs the simulator's landmarks
        errors = []
        for (uid, view), (sim_path, how) in source.items():
            if how != "as is":
                continue
            key = store.study_key(uid)
            got = marks[marks["path"].str.endswith(f"/{key}_{view}.dcm")].set_index("landmark")
            want = truth[truth["path"] == sim_path].set_index("landmark")
            both = got.join(want, rsuffix="_true", how="inner")
            assert len(both) >= 10, (uid, view, len(both))
            errors += np.hypot(both.x - both.x_true, both.y - both.y_true).tolist()
        assert np.median(errors) < 0.02 * 128, np.median(errors)  # 2 % of the image width
        print(f"\nsite route from a pull: {len(errors)} landmarks, median error {np.median(errors):.2f} px, "
              f"{np.mean(np.asarray(errors) <= 0.02 * 128):.1%} within 2 % of the width")
        flagged = marks[marks["path"].str.endswith(f"/{store.study_key(mixed_up)}_hand_left.dcm")]
        assert len(flagged) and flagged["qc"].str.contains("mirrored|implausible").all()  # the record says why
        # 2. every study: one SR, per-joint JSN and erosion with their SDs equal to the Predictions
        for uid in uids:
            key = store.study_key(uid)
            [sr] = _srs(fresh, uid)
            back = read_report(pydicom.dcmread(__import__("io").BytesIO(fresh.file(sr["ID"]))))
            assert back["verification"] == "UNVERIFIED"
            [pred] = [p for p in kept if key in p["visit_id"].values]
            pseudo = store.pseudonym(mrn[uid])
            expected = visit_result(pred, pseudo, key)
            assert back["outcomes"] == expected.outcomes and {"svdh", "jsn", "erosion"} <= set(back["outcomes"])
            assert len(back["joints"]) == len(expected.joints) > 0
            for j in expected.joints:
                got = back["joints"][(j.joint, j.kind)]
                assert got["score"] == j.score and got["sd"] == j.sd and got["sd"] is not None
                assert got["laterality"] == ("Left" if j.view.endswith("left") else "Right")
            bundle = __import__("json").loads((fhir / f"{key}.json").read_text())
            assert len(bundle["entry"]) == len(expected.outcomes) + len(expected.joints)
            kinds = {k for (_joint, k) in back["joints"]}
            assert kinds == {"jsn", "erosion"}
            sides = {joint.split(":")[0] for (joint, _k) in back["joints"]}
            qc = back["landmark_qc"]
            assert set(qc) == {"hand_left", "hand_right"}
            if uid == mixed_up:  # the mix-up is not scored, flagged in the SR; the right hand is
                assert qc["hand_left"]["used"] is False and {"mirrored", "implausible"} & set(qc["hand_left"]["flags"])
                assert qc["hand_right"]["used"] is True and sides == {"hand_right"}
            else:
                assert qc["hand_left"]["used"] and qc["hand_right"]["used"], qc
                assert sides == {"hand_left", "hand_right"}
            # 3. the per-joint erosion overlays: one per scored image, redrawn equal
            stored = [pydicom.dcmread(io.BytesIO(fresh.file(i["ID"]))) for i in fresh.instances_of_study(uid)]
            scs = [d for d in stored if d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"]
            assert sorted(sc.Laterality for sc in scs) == (["R"] if uid == mixed_up else ["L", "R"])
            for sc in scs:
                assert sc.SeriesDescription == JOINT_SERIES_DESCRIPTION and sc.BurnedInAnnotation == "NO"
                view = "hand_left" if sc.Laterality == "L" else "hand_right"
                [src] = [d for d in stored if d.Modality == "DX" and d.get("ImageLaterality") == sc.Laterality]
                src.save_as(tmp_path / "src.dcm", enforce_file_format=True)
                [path] = marks.loc[marks["path"].str.endswith(f"/{key}_{view}.dcm"), "path"].unique()
                [want] = joint_overlays([read_image(tmp_path / "src.dcm").pixels], [(path, view, pseudo, key)],
                                        marks[marks["path"] == path], pred, "erosion")
                assert want is not None and np.array_equal(sc.pixel_array, want)
        store.close()
        _assert_clean([preds, fhir], [res.output], _identifying_strings_of(fresh, uids))


def test_a_site_route_overlay_names_a_joint_kind_and_a_whole_image_one_a_head(site_setup, run_dir):
    """``--overlay`` is checked before anything is pulled: a site-route run draws per-joint scores of one kind, a
    whole-image run attribution of one of its heads."""
    from raoutcome.errors import InputError
    from raoutcome.interop.score import _Scorer

    assert _Scorer(site_setup["run"], overlay="jsn").overlay == "jsn"
    with pytest.raises(InputError, match=r"per-joint scores of one kind \(erosion, jsn\)"):
        _Scorer(site_setup["run"], overlay="haq")
    with pytest.raises(InputError, match="not a head of this run"):
        _Scorer(run_dir, overlay="erosion_map")


def _identifying_strings_of(server, uids) -> list[bytes]:
    from test_no_identifying_data import sentinel_values, tokens

    restored = {sentinel_values()[k][1] for k in ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID",
                                                  "PatientID", "StudyDate")}
    found = [t.encode() for t in tokens() if t not in restored]
    found += [b"ZQSENTNAME", b"ZQMRN", BIRTH.encode()] + [d.encode() for d in set(STUDY_DATES)]
    return found + [uid.encode() for uid in uids]


def test_pull_and_score_over_https_against_a_real_tls_endpoint(run_dir, tmp_path, monkeypatch):
    """HTTPS end to end: a real TLS endpoint (a self-signed certificate, OpenSSL through Python's ssl) in front of
    a real Orthanc. Without the CA the client refuses the server; with ``--ca-bundle`` pull and score work and
    the SRs reach the server. (Orthanc 1.10.1's own SslEnabled crashes on the first HTTPS request here.)"""
    import shutil

    from raoutcome.cohort import load

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the TLS endpoint's throwaway certificate")
    for var in ("RANK", "WORLD_SIZE", "RAOUTCOME_PACS_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    cert, key = testserver.self_signed_certificate(tmp_path)
    with testserver.Orthanc(start_timeout_s=30) as fresh, testserver.TlsProxy(cert, key, fresh.http_port) as proxy:
        instances, studies = _hospital(n_patients=1)
        for ds in instances:
            fresh.upload_bytes(_bytes(ds))
        monkeypatch.setenv("RAOUTCOME_PACS_USER", fresh.user)
        monkeypatch.setenv("RAOUTCOME_PACS_PASSWORD", fresh.password)
        base = ["--server", proxy.url(), "--timeout", "30"]
        res = CliRunner().invoke(app, ["pacs", "pull", "--out", str(tmp_path / "c0"), *base])
        assert res.exit_code == 2 and "TLS verification failed" in res.output, res.output
        res = CliRunner().invoke(app, ["pacs", "pull", "--out", str(tmp_path / "c"), "--ca-bundle", str(cert), *base])
        assert res.exit_code == 0, res.output
        assert len(load(tmp_path / "c").images) == 4
        res = CliRunner().invoke(app, ["pacs", "score", "--run", str(run_dir), "--state", str(tmp_path / "s"),
                                       "--ca-bundle", str(cert), *base])
        assert res.exit_code == 0 and "2 SR stored" in res.output, res.output
        assert [len(_srs(fresh, uid)) for uid in studies] == [1, 1, 0]


def test_score_stores_attribution_overlays_as_secondary_captures(run_dir, tmp_path, monkeypatch):
    """``--overlay risk``: each scored image's Integrated Gradients overlay of the risk head is stored in its study as a
    Secondary Capture, equal pixel for pixel to the overlay recomputed from the original image and the run."""
    import io

    from raoutcome.imaging.io import read_image
    from raoutcome.interop.credentials import server_spec
    from raoutcome.interop.overlay import OVERLAY_SERIES_DESCRIPTION, attribution_overlays
    from raoutcome.interop.score import score
    from raoutcome.training.run import load_run

    for var in ("RANK", "WORLD_SIZE", "RAOUTCOME_PACS_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    with testserver.Orthanc(start_timeout_s=30) as fresh:
        instances, studies = _hospital(n_patients=1)
        for ds in instances:
            fresh.upload_bytes(_bytes(ds))
        monkeypatch.setenv("RAOUTCOME_PACS_USER", fresh.user)
        monkeypatch.setenv("RAOUTCOME_PACS_PASSWORD", fresh.password)
        summary = score(run_dir, server_spec(fresh.dicomweb_url, timeout_s=30), state=tmp_path / "state",
                        overlay="risk")
        assert (summary.stored, summary.overlays, summary.failed) == (2, 4, 0)
        models, cfg = load_run(run_dir)
        checked = 0
        for uid in list(studies)[:-1]:
            stored = [pydicom.dcmread(io.BytesIO(fresh.file(i["ID"]))) for i in fresh.instances_of_study(uid)]
            scs = [d for d in stored if d.SOPClassUID == "1.2.840.10008.5.1.4.1.1.7"]
            assert len(scs) == 2 and len(_srs(fresh, uid)) == 1
            for sc in scs:
                assert (sc.StudyInstanceUID, sc.PatientID) == (uid, studies[uid])
                assert (sc.PhotometricInterpretation, sc.BurnedInAnnotation) == ("RGB", "NO")
                assert sc.SeriesDescription == OVERLAY_SERIES_DESCRIPTION and "DERIVED" in sc.ImageType
                view = "hand_left" if sc.Laterality == "L" else "hand_right"
                [src] = [d for d in instances if d.StudyInstanceUID == uid and d.get("ImageLaterality") == sc.Laterality
                         and d.BodyPartExamined == "HAND" and d.Modality == "DX"]
                src.save_as(tmp_path / "src.dcm", enforce_file_format=True)
                contrast = tuple(cfg.data["contrast"]) if cfg.data["contrast"] else None
                [want] = attribution_overlays(models, [read_image(tmp_path / "src.dcm").pixels], [view], "risk",
                                              cfg.model["image_size"], contrast=contrast)
                assert np.array_equal(sc.pixel_array, want)
                assert want.std(axis=-1).max() > 0  # colour drawn over the grey radiograph
                checked += 1
        assert checked == 4
        # idempotent: a rerun stores nothing new
        again = score(run_dir, server_spec(fresh.dicomweb_url, timeout_s=30), state=tmp_path / "state",
                      overlay="risk")
        assert (again.stored, again.overlays) == (0, 0)
