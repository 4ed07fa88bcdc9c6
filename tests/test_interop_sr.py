"""DICOM SR (TID 1500), FHIR, credentials, de-identification and hostile-server handling, without a PACS.

The SR is written to bytes, read back with pydicom and parsed with highdicom, and every value is
compared with the Predictions it came from (per-joint schema of docs/dev/issue-23.md).
"""
from __future__ import annotations

import io
import json
import os
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest
import xarray as xr

pytest.importorskip("highdicom", reason="the [pacs] extra (highdicom, dicomweb-client, pynetdicom) is not installed")
pytest.importorskip("dicomweb_client", reason="the [pacs] extra is not installed")

import pydicom  # noqa: E402
from pydicom.dataset import Dataset, FileMetaDataset  # noqa: E402
from pydicom.uid import ExplicitVRLittleEndian, generate_uid  # noqa: E402

from raoutcome.interop import fhir  # noqa: E402
from raoutcome.interop.credentials import PacsError, server_spec  # noqa: E402
from raoutcome.interop.deid import BASIC_PROFILE_TEXT, deidentify, view_of  # noqa: E402
from raoutcome.interop.results import visit_result  # noqa: E402
from raoutcome.interop.server import DicomWebServer, InstanceRef  # noqa: E402
from raoutcome.interop.sr import Algorithm, build_report, read_report, sr_uids  # noqa: E402
from raoutcome.predictions import from_frame  # noqa: E402

JOINTS = ["hand_left:MCP2", "hand_left:PIP3", "hand_right:MCP2", "foot_left:MTP5"]


def _predictions(with_joints: bool) -> xr.Dataset:
    rng = np.random.default_rng(3)
    frame = pd.DataFrame({"patient_id": ["p1", "p1", "p2"], "visit_id": ["S1", "S2", "S3"],
                          "time_years": [0.0, 1.0, 0.0], "svdh": [10.5, 12.25, 3.0], "jsn": [4.0, 5.0, 1.0],
                          "erosion": [6.5, 7.25, 2.0], "haq": [1.125, 1.25, 0.5], "pain": [40.0, np.nan, 20.0],
                          "risk": [-0.25, 0.5, -1.0]})
    ds = from_frame(frame)
    if not with_joints:
        return ds
    shape = (2, 3, len(JOINTS), 2)
    prob = rng.dirichlet(np.ones(11), size=shape).astype(np.float32)
    for j, joint in enumerate(JOINTS):  # grades beyond the kind's maximum are NaN (issue-23 schema)
        for k, kind in enumerate(("jsn", "erosion")):
            top = 4 if kind == "jsn" else (10 if joint.startswith("foot") else 5)
            prob[:, :, j, k, top + 1:] = np.nan
            prob[:, :, j, k, :top + 1] /= prob[:, :, j, k, :top + 1].sum(-1, keepdims=True)
    grades = np.arange(11)
    score = np.nansum(prob * grades, -1)
    sd = np.sqrt(np.nansum(prob * (grades - score[..., None]) ** 2, -1))
    score[0, 0, 1, 0] = np.nan  # one joint not scored for JSN at one visit
    ds = ds.assign_coords(joint=JOINTS, kind=["jsn", "erosion"], grade=grades)
    dims = ("patient_id", "visit_id", "joint", "kind")
    ds["joint_score"] = (dims, score.astype(np.float32))
    ds["joint_sd"] = (dims, sd.astype(np.float32))
    ds["joint_prob"] = (dims + ("grade",), prob)
    ds["svdh_sd"] = (("patient_id", "visit_id"), np.full((2, 3), 1.5))
    return ds


def _source(view: str, study: str = "1.2.3.4") -> Dataset:
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1"
    ds.SOPInstanceUID, ds.SeriesInstanceUID, ds.StudyInstanceUID = generate_uid(), generate_uid(), study
    ds.PatientName, ds.PatientID, ds.PatientBirthDate, ds.PatientSex = "Doe^Jane", "MRN-1", "19600101", "F"
    ds.StudyDate, ds.StudyTime, ds.AccessionNumber, ds.StudyID = "20200102", "101010", "ACC1", "ST1"
    ds.ReferringPhysicianName, ds.Modality = "Ref^Doc", "DX"
    ds.BodyPartExamined = "FOOT" if view.startswith("foot") else "HAND"
    ds.ImageLaterality, ds.ViewPosition = ("L" if view.endswith("left") else "R"), "PA"
    ds.Rows = ds.Columns = 8
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
    ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
    ds.PixelData = (np.arange(64, dtype=np.uint16) * 16).tobytes()
    return ds


def _roundtrip(sr: Dataset) -> Dataset:
    buf = io.BytesIO()
    sr.save_as(buf, enforce_file_format=True)
    return pydicom.dcmread(io.BytesIO(buf.getvalue()))


@pytest.mark.parametrize("with_joints", [True, False])
def test_sr_reads_back_with_every_value_of_the_predictions(with_joints):
    ds = _predictions(with_joints)
    views = {v: _source(v) for v in ("hand_left", "hand_right", "foot_left")}
    result = visit_result(ds, "p1", "S1")
    algorithm = Algorithm(version="9.9", run="r:abc")
    back = read_report(_roundtrip(build_report(result, list(views.values()), "1.2.3.4", algorithm, views=views)))
    # visit level: every finite Predictions variable, nothing else
    expected = {n: float(ds[n].sel(patient_id="p1", visit_id="S1")) for n in ("svdh", "jsn", "erosion", "haq",
                                                                              "pain", "risk")}
    assert back["outcomes"] == expected
    assert back["algorithm"] == ("raoutcome", "9.9")
    assert (back["verification"], back["preliminary"], back["completion"]) == ("UNVERIFIED", "PRELIMINARY", "COMPLETE")
    if not with_joints:
        assert back["joints"] == {} and back["outcome_sd"] == {}
        return
    assert back["outcome_sd"] == {"svdh": 1.5}
    sel = ds.sel(patient_id="p1", visit_id="S1")
    n_expected = int(np.isfinite(sel["joint_score"].values).sum())
    assert len(back["joints"]) == n_expected == 2 * len(JOINTS) - 1
    for (joint, kind), got in back["joints"].items():
        at = {"joint": joint, "kind": kind}
        assert got["score"] == float(sel["joint_score"].sel(at))
        assert got["sd"] == float(sel["joint_sd"].sel(at))
        p = sel["joint_prob"].sel(at).values
        top = 4 if kind == "jsn" else (10 if joint.startswith("foot") else 5)
        assert len(got["probs"]) == top + 1
        assert np.allclose(got["probs"], p[:top + 1].astype(float), rtol=0, atol=0)
        view, site = joint.split(":")
        assert got["laterality"] == ("Left" if view.endswith("left") else "Right")
        assert got["site"] == f"{view.split('_')[0].upper()}-{site}"
    assert ("hand_left:PIP3", "jsn") not in back["joints"]  # the NaN joint is not reported


def test_sr_copies_patient_and_study_and_has_deterministic_uids():
    ds = _predictions(False)
    src = [_source("hand_left")]
    alg = Algorithm(run="a")
    sr1 = build_report(visit_result(ds, "p2", "S3"), src, "1.2.3.4", alg)
    sr2 = build_report(visit_result(ds, "p2", "S3"), src, "1.2.3.4", alg)
    assert (sr1.StudyInstanceUID, sr1.PatientID, sr1.PatientName) == ("1.2.3.4", "MRN-1", "Doe^Jane")
    assert (sr1.SeriesInstanceUID, sr1.SOPInstanceUID) == (sr2.SeriesInstanceUID, sr2.SOPInstanceUID)
    assert (sr1.SeriesInstanceUID, sr1.SOPInstanceUID) == sr_uids("1.2.3.4", alg)
    assert sr_uids("1.2.3.4", Algorithm(run="b")) != sr_uids("1.2.3.4", alg)
    assert sr_uids("1.2.3.5", alg) != sr_uids("1.2.3.4", alg)
    # a device observer made it (IHE AI Results)
    observer_types = [i.ConceptCodeSequence[0].CodeValue for i in _walk(sr1.ContentSequence)
                      if i.ConceptNameCodeSequence[0].CodeValue == "121005"]
    assert observer_types == ["121007"]  # Observer Type = Device


def _walk(items):
    for item in items:
        yield item
        yield from _walk(item.get("ContentSequence", []))


def test_sr_without_optional_patient_attributes_still_builds():
    src = _source("hand_left")
    for k in ("PatientBirthDate", "PatientSex", "AccessionNumber", "ReferringPhysicianName", "StudyID"):
        delattr(src, k)
    sr = build_report(visit_result(_predictions(False), "p1", "S2"), [src], "1.2.3.4", Algorithm())
    assert read_report(_roundtrip(sr))["outcomes"]["svdh"] == 12.25


def test_fhir_bundle_matches_the_predictions():
    ds = _predictions(True)
    result = visit_result(ds, "p1", "S2")
    b = json.loads(json.dumps(fhir.bundle(result, "S2", Algorithm(run="r"))))
    obs = [e["resource"] for e in b["entry"]]
    assert all(o["status"] == "preliminary" and o["subject"]["reference"] == "Patient/p1" for o in obs)
    by_id = {o["id"]: o for o in obs}
    assert by_id["S2-haq"]["valueQuantity"]["value"] == 1.25
    sel = ds.sel(patient_id="p1", visit_id="S2", joint="foot_left:MTP5", kind="erosion")
    o = by_id["S2-foot_left-MTP5-erosion"]
    assert o["valueQuantity"]["value"] == float(sel["joint_score"])
    assert o["bodySite"]["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "7771000"
    comps = o["component"]
    assert comps[0]["valueQuantity"]["value"] == float(sel["joint_sd"]) and len(comps) == 1 + 11


# ----------------------------------------------------------------------------------- credentials
def test_credentials_from_environment_never_shown(monkeypatch):
    monkeypatch.setenv("RAOUTCOME_PACS_USER", "alice")
    monkeypatch.setenv("RAOUTCOME_PACS_PASSWORD", "s3cr3t-pw")
    monkeypatch.delenv("RAOUTCOME_PACS_CREDENTIALS", raising=False)
    spec = server_spec("https://pacs.example/dicom-web")
    assert (spec.username, spec.password, spec.auth_kind) == ("alice", "s3cr3t-pw", "basic")
    assert "s3cr3t" not in repr(spec) and "alice" not in repr(spec)


def test_credentials_file_must_be_private(tmp_path, monkeypatch):
    for var in ("RAOUTCOME_PACS_USER", "RAOUTCOME_PACS_PASSWORD", "RAOUTCOME_PACS_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    f = tmp_path / "cred.toml"
    f.write_text('token = "tok-123"\n')
    os.chmod(f, 0o644)
    with pytest.raises(PacsError, match="readable by others"):
        server_spec("https://pacs.example/dicom-web", credentials=f)
    os.chmod(f, 0o600)
    spec = server_spec("https://pacs.example/dicom-web", credentials=f)
    assert spec.auth_kind == "bearer" and spec.token == "tok-123"


def test_password_in_url_is_refused_and_dimse_url_parsed():
    with pytest.raises(PacsError, match="user name or password"):
        server_spec("https://bob:pw@pacs.example/dicom-web")
    spec = server_spec("dicom://PACSAE@10.0.0.5:104?calling=ME&retrieve=move&move_port=11113")
    assert (spec.kind, spec.called_aet, spec.calling_aet, spec.retrieve, spec.move_port) == \
        ("dimse", "PACSAE", "ME", "move", 11113)
    with pytest.raises(PacsError):
        server_spec("ftp://x")


# ----------------------------------------------------------------------------------- de-identification
def test_view_of_reasons():
    assert view_of(_source("hand_left")) == ("hand_left", None)
    assert view_of(_source("foot_right")) == ("foot_right", None)
    ds = _source("hand_left")
    ds.ImageLaterality = "B"
    assert "both sides" in view_of(ds)[1]
    ds = _source("hand_left")
    ds.BodyPartExamined = "CHEST"
    assert "CHEST is not scored" in view_of(ds)[1]
    ds = _source("hand_left")
    ds.Modality = "MR"
    assert view_of(ds)[0] is None
    ds = _source("hand_left")
    ds.BurnedInAnnotation = "YES"
    assert "burned-in" in view_of(ds)[1]
    ds = _source("hand_left")
    del ds.ImageLaterality
    assert "Laterality" in view_of(ds)[1]


def test_deidentify_drops_every_basic_profile_text_attribute():
    ds = _source("hand_left")
    for i, keyword in enumerate(BASIC_PROFILE_TEXT):
        setattr(ds, keyword, f"SENTINEL{i}")
    ds.add_new(0x00091010, "LO", "SENTINEL-PRIVATE")
    clean = deidentify(ds, "PABC", lambda uid: "2.25." + str(abs(hash(uid)) % 10**20))
    buf = io.BytesIO()
    clean.save_as(buf, enforce_file_format=True)
    raw = buf.getvalue()
    assert b"SENTINEL" not in raw and b"Doe^Jane" not in raw and b"MRN-1" not in raw and b"20200102" not in raw
    assert ds.StudyInstanceUID.encode() not in raw
    assert clean.PatientID == "PABC" and clean.PatientIdentityRemoved == "YES"
    assert np.array_equal(clean.pixel_array, ds.pixel_array)


# ----------------------------------------------------------------------------------- hostile server
class _Hostile(BaseHTTPRequestHandler):
    mode = "type"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_GET(self):  # noqa: N802 - http.server API
        if self.server.mode == "bearer":
            if self.headers.get("Authorization") != "Bearer tok-XYZ":
                return self._send(b"", status=401)
            return self._send(b"[]")
        study = {"0020000D": {"vr": "UI", "Value": ["1.2.3.4"]}, "00100020": {"vr": "LO", "Value": ["X"]}}
        if self.path.startswith("/dicom-web/studies?"):
            if self.server.mode == "type":
                return self._send(b"<html>login</html>", "text/html")
            if self.server.mode == "missing-study":
                return self._send(json.dumps([{"00100020": {"vr": "LO", "Value": ["X"]}}]).encode())
            return self._send(json.dumps([study]).encode())
        if "/instances" in self.path and "?" in self.path or self.path.endswith("/instances"):
            if self.server.mode == "missing-instance":
                return self._send(json.dumps([{"0020000E": {"vr": "UI", "Value": ["1.2.3.4.5"]}}]).encode())
            if self.server.mode == "huge":
                return self._send(b"[" + b" " * 50_000 + b"]", declare=False)
            return self._send(b"[]")
        if self.server.mode == "retrieve-type":
            return self._send(b"not dicom", "application/octet-stream")
        self._send(b"[]")

    def _send(self, body: bytes, ctype: str = "application/dicom+json", declare: bool = True, status: int = 200):
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        if declare:
            self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def hostile():
    yield from _serve()


def _serve(certificate=None):
    srv = ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    srv.daemon_threads = True
    if certificate is not None:
        import ssl

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(*certificate)
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _client(srv, max_bytes=10_000):
    spec = server_spec(f"http://127.0.0.1:{srv.server_address[1]}/dicom-web", timeout_s=5, max_bytes=max_bytes)
    return DicomWebServer(spec, label=lambda uid: "S-KEY" if uid == "1.2.3.4" else uid)


def test_wrong_content_type_is_an_error(hostile):
    hostile.mode = "type"
    with pytest.raises(PacsError, match="wrong content type 'text/html'"):
        list(_client(hostile).studies(None, ["DX"]))


def test_missing_tags_name_the_study(hostile):
    hostile.mode = "missing-study"
    with pytest.raises(PacsError, match="lacks StudyInstanceUID"):
        list(_client(hostile).studies(None, ["DX"]))
    hostile.mode = "missing-instance"
    with pytest.raises(PacsError, match=r"study S-KEY: .*lacks SOPInstanceUID"):
        _client(hostile).instances("1.2.3.4", ["DX"])


def test_huge_answer_is_cut_off_and_names_the_study(hostile):
    hostile.mode = "huge"
    with pytest.raises(PacsError, match=r"study S-KEY: .*larger than the limit of 10000 bytes"):
        _client(hostile).instances("1.2.3.4", ["DX"])


def test_retrieve_with_wrong_type_names_the_study(hostile):
    hostile.mode = "retrieve-type"
    with pytest.raises(PacsError, match=r"study S-KEY: WADO-RS retrieve: .*wrong content type") as err:
        _client(hostile).retrieve(InstanceRef("1.2.3.4", "1.2.3.4.5", "1.2.3.4.5.6"))
    assert "1.2.3.4" not in str(err.value)  # the study's UIDs stay out of messages


def test_sr_builds_when_the_header_has_an_invalid_patient_sex():
    src = _source("hand_left")
    src.PatientSex = "ZQBAD"  # a value highdicom refuses: emptied rather than no SR at all
    sr = build_report(visit_result(_predictions(False), "p1", "S2"), [src], "1.2.3.4", Algorithm())
    assert sr.PatientSex == "" and b"ZQBAD" not in _roundtrip(sr).PatientSex.encode()


def test_bearer_token_is_sent_and_a_refusal_names_no_secret(hostile, monkeypatch, caplog):
    import logging

    caplog.set_level(logging.DEBUG)
    hostile.mode = "bearer"
    for var in ("RAOUTCOME_PACS_USER", "RAOUTCOME_PACS_PASSWORD", "RAOUTCOME_PACS_CREDENTIALS"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RAOUTCOME_PACS_TOKEN", "tok-XYZ")
    assert list(_client(hostile).studies(None, ["DX"])) == []
    monkeypatch.setenv("RAOUTCOME_PACS_TOKEN", "tok-WRONG")
    with pytest.raises(PacsError, match="HTTP 401") as err:
        list(_client(hostile).studies(None, ["DX"]))
    assert "tok-" not in str(err.value) and "tok-" not in caplog.text


@pytest.fixture
def tls_server(tmp_path):
    import shutil
    import subprocess

    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make the test server's certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    for srv in _serve((str(cert), str(key))):
        srv.mode = "ok"
        srv.certificate = cert
        yield srv


def test_tls_certificate_is_verified_against_the_given_ca(tls_server):
    url = f"https://127.0.0.1:{tls_server.server_address[1]}/dicom-web"
    with pytest.raises(PacsError, match="TLS verification failed"):  # self-signed: not in the system store
        list(DicomWebServer(server_spec(url, timeout_s=5)).studies(None, ["DX"]))
    trusted = DicomWebServer(server_spec(url, ca_bundle=tls_server.certificate, timeout_s=5))
    assert [s.study_uid for s in trusted.studies(None, ["DX"])] == ["1.2.3.4"]
    insecure = DicomWebServer(server_spec(url, insecure=True, timeout_s=5))
    with pytest.warns(Warning, match="Unverified HTTPS"):
        assert len(list(insecure.studies(None, ["DX"]))) == 1


def test_an_outcome_registered_later_is_reported_too():
    ds = _predictions(False)
    ds["das28"] = xr.full_like(ds["svdh"], np.nan)
    ds["das28"].loc[{"patient_id": "p1", "visit_id": "S2"}] = 4.5
    result = visit_result(ds, "p1", "S2")
    assert result.outcomes["das28"] == 4.5
    sr = build_report(result, [_source("hand_left")], "1.2.3.4", Algorithm())
    back = read_report(_roundtrip(sr))
    assert back["outcomes"]["das28"] == 4.5 and back["outcomes"]["haq"] == 1.25
    # concept names carry the outcome registry's labels
    meanings = {i.ConceptNameCodeSequence[0].CodeValue: i.ConceptNameCodeSequence[0].CodeMeaning
                for i in _walk(sr.ContentSequence) if i.ValueType == "NUM"}
    from raoutcome import outcomes

    assert meanings["RAO-HAQ"] == f"Predicted {outcomes.title('haq')}" and meanings["RAO-DAS28"] == "Predicted das28"


def test_sr_from_predictions_built_by_the_site_route_schema():
    """The joint dimension as raoutcome.joint_predictions.add_joints writes it (issue 23) reads back exactly."""
    from raoutcome.joint_predictions import add_joints

    ds = _predictions(False)
    rows = []
    rng = np.random.default_rng(5)
    for joint, kind, top in (("hand_left:MCP2", "jsn", 4), ("hand_left:MCP2", "erosion", 5),
                             ("foot_right:MTP1", "erosion", 10)):
        p = rng.dirichlet(np.ones(top + 1))
        e = float((p * np.arange(top + 1)).sum())
        rows.append({"patient_id": "p1", "visit_id": "S1", "joint": joint, "kind": kind, "score": e,
                     "sd": float(np.sqrt((p * (np.arange(top + 1) - e) ** 2).sum())),
                     **{f"p{k}": (p[k] if k <= top else np.nan) for k in range(11)}})
    ds = add_joints(ds, pd.DataFrame(rows))
    result = visit_result(ds, "p1", "S1")
    assert len(result.joints) == 3
    back = read_report(_roundtrip(build_report(result, [_source("hand_left")], "1.2.3.4", Algorithm())))
    for r in rows:
        got = back["joints"][(r["joint"], r["kind"])]
        assert got["score"] == float(np.float32(r["score"])) and got["sd"] == float(np.float32(r["sd"]))
        top = 4 if r["kind"] == "jsn" else (10 if r["joint"].startswith("foot") else 5)
        assert np.array_equal(got["probs"], [float(np.float32(r[f"p{k}"])) for k in range(top + 1)])
    assert back["joints"][("foot_right:MTP1", "erosion")]["laterality"] == "Right"


def test_sr_carries_the_landmark_qc_verdict_of_each_image():
    """Site-route results: each image's landmark QC decision (used or not, flags, landmarks left out) reads back."""
    from raoutcome.interop.landmark_gate import ImageQc

    ds = _predictions(True)
    views = {v: _source(v) for v in ("hand_left", "hand_right")}
    verdicts = [ImageQc("images/a/S1_hand_left.dcm", "hand_left", ("mirrored", "implausible"), (), False),
                ImageQc("images/a/S1_hand_right.dcm", "hand_right", ("rotated",), ("PIP3: outlier",), True)]
    assert verdicts[0].reason == "hand_left image not scored: landmark QC flagged it mirrored, implausible"
    sr = build_report(visit_result(ds, "p1", "S1"), list(views.values()), "1.2.3.4", Algorithm(), views=views,
                      landmark_qc=verdicts)
    back = read_report(_roundtrip(sr))
    assert back["landmark_qc"] == {
        "hand_left": {"used": False, "flags": ["mirrored", "implausible"], "dropped": []},
        "hand_right": {"used": True, "flags": ["rotated"], "dropped": ["PIP3: outlier"]}}
    assert len(back["joints"]) == 2 * len(JOINTS) - 1  # the QC groups are not read as joints
    # each QC group points at its image
    refs = {i.ReferencedSOPSequence[0].ReferencedSOPInstanceUID for i in _walk(sr.ContentSequence)
            if i.ValueType == "IMAGE"}
    assert {views["hand_left"].SOPInstanceUID, views["hand_right"].SOPInstanceUID} <= refs
    ok = build_report(visit_result(ds, "p1", "S1"), list(views.values()), "1.2.3.4", Algorithm(), views=views,
                      landmark_qc=[ImageQc("x", "hand_left", (), (), True)])
    assert read_report(_roundtrip(ok))["landmark_qc"]["hand_left"] == {"used": True, "flags": ["ok"], "dropped": []}
