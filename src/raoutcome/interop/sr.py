"""One study's results as a DICOM Structured Report: TID 1500 Measurement Report via highdicom.

Layout (PS3.16 TID 1500, built by :class:`highdicom.sr.MeasurementReport`):

- observation context: a *device* observer (the algorithm: name, version, a UID derived from
  them) — the IHE AI Results profile's "the evaluation was made by an AI";
- one measurement group (TID 1501) per scored joint: tracking identifier ``view:site``, finding
  site = the SvdH site (private code) with its laterality (SCT Left/Right), the JSN and/or erosion
  score as a measurement with, as statistical properties, its standard deviation (SCT 386136009)
  and the class probabilities;
- one measurement group ``visit`` with the totals, predicted HAQ, pain and deformity risk;
- for a site-route result, one group ``landmarks:<view>`` per image (source image, body part and
  laterality) with the landmark QC's verdict as qualitative evaluations: used for scoring (SCT Yes/No),
  each image-level flag, each landmark left out (:mod:`raoutcome.interop.landmark_gate`);
- every group carries the algorithm identification (name, version, parameters);
- the document is ``VerificationFlag = UNVERIFIED`` and ``PreliminaryFlag = PRELIMINARY``
  (no human has checked it), ``CompletionFlag = COMPLETE``.

The SR's series and SOP instance UIDs are derived deterministically from the study UID and the
algorithm (name, version, run), so storing the same result twice gives the same instance and a
server holds it once (what makes a killed and rerun ``pacs score`` leave no duplicate).

References
----------
DICOM PS3.16 TID 1500 / 1501; IHE Radiology AI Results (AIR) supplement; highdicom
(Herrmann et al., J Digit Imaging 2022).
"""
from __future__ import annotations

__all__ = ["Algorithm", "sr_uids", "build_report", "read_report", "SR_SERIES_DESCRIPTION"]

import math
from dataclasses import dataclass, field
from typing import Sequence

from pydicom.dataset import Dataset
from pydicom.uid import generate_uid

from raoutcome.interop import codes
from raoutcome.interop.results import JointResult, VisitResult, outcome_label

SR_SERIES_DESCRIPTION = "raoutcome AI result (unverified)"
SR_SERIES_NUMBER = 9901


@dataclass(frozen=True)
class Algorithm:
    """What produced the result: name, version, and the run (model) it used."""

    name: str = "raoutcome"
    version: str = "0.1.0"
    run: str = ""
    parameters: tuple[str, ...] = field(default_factory=tuple)

    @property
    def key(self) -> str:
        return f"{self.name}|{self.version}|{self.run}"

    @property
    def device_uid(self) -> str:
        return generate_uid(entropy_srcs=["raoutcome-device", self.key])


def sr_uids(study_uid: str, algorithm: Algorithm) -> tuple[str, str]:
    """(series UID, SOP instance UID) of the SR for ``study_uid``: the same inputs give the same UIDs."""
    return (generate_uid(entropy_srcs=["raoutcome-sr-series", study_uid, algorithm.key]),
            generate_uid(entropy_srcs=["raoutcome-sr-instance", study_uid, algorithm.key]))


def _measurement(name, value: float, unit: str, algorithm_id, sd: float | None = None,
                 probs: Sequence[float] | None = None, finding_sites=None):
    import highdicom as hd
    from pydicom.sr.codedict import codes as dcodes

    props = None
    stats = []
    if sd is not None and math.isfinite(sd):
        stats.append(hd.sr.NumContentItem(name=dcodes.SCT.StandardDeviation, value=float(sd),
                                          unit=codes.unit_concept(unit), relationship_type="HAS PROPERTIES"))
    for k, p in enumerate(probs or ()):
        stats.append(hd.sr.NumContentItem(name=codes.probability_concept(k), value=float(p),
                                          unit=codes.unit_concept("1"), relationship_type="HAS PROPERTIES"))
    if stats:
        props = hd.sr.MeasurementProperties(measurement_statistical_properties=hd.sr.MeasurementStatisticalProperties(
            values=stats, description="predictive distribution of the model"))
    return hd.sr.Measurement(name=name, value=float(value), unit=codes.unit_concept(unit), algorithm_id=algorithm_id,
                             properties=props, finding_sites=finding_sites)


def _joint_group(joint: str, results: list[JointResult], algorithm_id, sources: dict[str, Dataset]):
    import highdicom as hd

    view, site = joint.split(":", 1)
    finding = hd.sr.FindingSite(anatomic_location=codes.site_concept(view, site),
                                laterality=codes.laterality_concept(view))
    measurements = [
        _measurement(codes.concept(*codes.KIND_CONCEPTS[r.kind]), r.score, "{score}", algorithm_id, r.sd, r.probs)
        for r in sorted(results, key=lambda r: r.kind)]
    source = sources.get(view)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(entropy_srcs=["joint", joint]),
                                                     identifier=joint),
        algorithm_id=algorithm_id, finding_sites=[finding], measurements=measurements,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)] if source is not None else None)


def _qc_group(verdict, algorithm_id, sources: dict[str, Dataset]):
    """The landmark QC's verdict on one image (:class:`raoutcome.interop.landmark_gate.ImageQc`)."""
    import highdicom as hd

    part = "foot" if verdict.view.startswith("foot") else "hand"
    finding = hd.sr.FindingSite(anatomic_location=codes.concept(*codes.BODY_PART_CONCEPTS[part]),
                                laterality=codes.laterality_concept(verdict.view))
    evaluations = [hd.sr.QualitativeEvaluation(codes.concept(*codes.QC_USED), codes.yes_no(verdict.scored))]
    evaluations += [hd.sr.QualitativeEvaluation(codes.concept(*codes.QC_FLAG), codes.qc_flag_concept(flag))
                    for flag in verdict.flags or ("ok",)]
    evaluations += [hd.sr.QualitativeEvaluation(codes.concept(*codes.QC_DROPPED), codes.landmark_concept(text))
                    for text in verdict.dropped]
    source = sources.get(verdict.view)
    return hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(entropy_srcs=["landmarks", verdict.view]),
                                                     identifier=f"landmarks:{verdict.view}"),
        algorithm_id=algorithm_id, finding_sites=[finding], qualitative_evaluations=evaluations,
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(source)] if source is not None else None)


def build_report(result: VisitResult, evidence: Sequence[Dataset], study_uid: str, algorithm: Algorithm,
                 views: dict[str, Dataset] | None = None, landmark_qc: Sequence = ()) -> Dataset:
    """The TID 1500 SR (a :class:`highdicom.sr.Comprehensive3DSR`) for one study.

    ``evidence`` are the study's source instances (headers are enough, no pixels needed): the SR
    takes its patient and study modules from them, so it files into the same study on the server.
    ``views`` maps a view name to the instance it was read from (the joint groups' source image).
    ``landmark_qc``: the landmark QC's verdict on each image of a site-route result
    (:class:`raoutcome.interop.landmark_gate.ImageQc`), one group each.
    """
    import highdicom as hd
    from pydicom.sr.codedict import codes as dcodes

    algorithm_id = hd.sr.AlgorithmIdentification(name=algorithm.name, version=algorithm.version,
                                                  parameters=[f"run={algorithm.run}", *algorithm.parameters])
    device = hd.sr.ObserverContext(
        observer_type=dcodes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=algorithm.device_uid, name=algorithm.name, model_name=f"{algorithm.name} {algorithm.version}",
            manufacturer_name="raoutcome"))
    groups = []
    by_joint: dict[str, list[JointResult]] = {}
    for r in result.joints:
        by_joint.setdefault(r.joint, []).append(r)
    for joint in sorted(by_joint):
        groups.append(_joint_group(joint, by_joint[joint], algorithm_id, views or {}))
    for verdict in sorted(landmark_qc, key=lambda v: v.view):
        groups.append(_qc_group(verdict, algorithm_id, views or {}))
    visit_measurements = [
        _measurement(codes.concept(*codes.outcome_concept(name)), value, outcome_label(name)[1], algorithm_id,
                     sd=result.outcome_sd.get(name))
        for name, value in result.outcomes.items()]
    if visit_measurements:
        groups.append(hd.sr.MeasurementsAndQualitativeEvaluations(
            tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(entropy_srcs=["visit", study_uid]),
                                                         identifier="visit"),
            algorithm_id=algorithm_id, measurements=visit_measurements))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=device),
        procedure_reported=codes.concept(*codes.PROCEDURE),
        imaging_measurements=groups)
    series_uid, sop_uid = sr_uids(study_uid, algorithm)
    evidence = [_with_type2(ds) for ds in evidence]
    sr = hd.sr.Comprehensive3DSR(
        evidence=evidence, content=report, series_instance_uid=series_uid, series_number=SR_SERIES_NUMBER,
        sop_instance_uid=sop_uid, instance_number=1, manufacturer="raoutcome", is_complete=True, is_final=False,
        is_verified=False, series_description=SR_SERIES_DESCRIPTION)
    return sr


_TYPE2 = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyID", "AccessionNumber",
          "ReferringPhysicianName", "StudyDate", "StudyTime")


def _with_type2(ds: Dataset) -> Dataset:
    """The patient/study module's type 2 attributes present (empty when the source lacks them), and a
    Patient's Sex outside M/F/O emptied (highdicom refuses it; the SR would not be written at all)."""
    sex = str(ds.get("PatientSex", "") or "").strip().upper()
    if all(k in ds for k in _TYPE2) and sex in ("", "M", "F", "O"):
        return ds
    ds = ds.copy()
    for keyword in _TYPE2:
        if keyword not in ds:
            setattr(ds, keyword, "")
    if sex not in ("", "M", "F", "O"):
        ds.PatientSex = ""
    return ds


def read_report(ds: Dataset) -> dict:
    """Parse an SR written by :func:`build_report` back into plain values (through highdicom).

    Returns ``{"algorithm": (name, version), "verification": ..., "outcomes": {name: value},
    "joints": {(joint, kind): {"score", "sd", "probs", "site", "laterality"}},
    "landmark_qc": {view: {"used": bool, "flags": [...], "dropped": [...]}}}``.
    """
    import highdicom as hd

    sr = hd.sr.Comprehensive3DSR.from_dataset(ds, copy=True)
    report = sr.content
    kind_by_code = {v[0]: k for k, v in codes.KIND_CONCEPTS.items()}
    out: dict = {"verification": str(ds.get("VerificationFlag", "")),
                 "preliminary": str(ds.get("PreliminaryFlag", "")),
                 "completion": str(ds.get("CompletionFlag", "")), "outcomes": {}, "outcome_sd": {}, "joints": {}, "algorithm": None,
           "landmark_qc": {}}
    for group in report.get_image_measurement_groups():
        ident = group.tracking_identifier
        sites = group.finding_sites
        if ident and ident.startswith("landmarks:"):
            out["landmark_qc"][ident.split(":", 1)[1]] = _qc_of(group)
            continue
        for m in group.get_measurements():
            name, version = _text(m, "111001"), _text(m, "111003")  # DCM Algorithm Name / Version
            if name and version:
                out["algorithm"] = (name, version)
            code = m.name.value
            sd, probs = None, []
            for item in _stat_items(m):
                if item.ConceptNameCodeSequence[0].CodeValue == "386136009":
                    sd = _num(item)
                elif item.ConceptNameCodeSequence[0].CodeValue.startswith("P-SCORE-"):
                    probs.append(_num(item))
            name = codes.outcome_of_code(code)
            if name is not None:
                out["outcomes"][name] = _num(m[0])
                if sd is not None:
                    out["outcome_sd"][name] = sd
                continue
            site = sites[0] if sites else None
            out["joints"][(ident, kind_by_code[code])] = {
                "score": _num(m[0]), "sd": sd, "probs": tuple(probs) or None,
                "site": site.value.value if site is not None else None,
                "laterality": _laterality(site)}
    return out


def _qc_of(group) -> dict:
    """The landmark QC verdict of a ``landmarks:<view>`` group (see :func:`_qc_group`)."""
    found: dict = {"used": None, "flags": [], "dropped": []}
    for item in group.get_qualitative_evaluations():
        name, value = item.name.value, item.value
        if name == codes.QC_USED[0]:
            found["used"] = value.value == codes.YES[0]
        elif name == codes.QC_FLAG[0]:
            found["flags"].append(codes.qc_flag_of(value.value))
        elif name == codes.QC_DROPPED[0]:
            found["dropped"].append(value.meaning)
    return found


def _stat_items(measurement) -> list:
    """The NUM items under the measurement's statistical properties (any depth)."""
    found = []

    def walk(items):
        for item in items:
            if item.ValueType == "NUM" and item.RelationshipType == "HAS PROPERTIES" and \
                    item.ConceptNameCodeSequence[0].CodingSchemeDesignator in ("SCT", codes.SCHEME) and \
                    item.ConceptNameCodeSequence[0].CodeValue != measurement.name.value:
                found.append(item)
            if "ContentSequence" in item:
                walk(item.ContentSequence)

    num = measurement[0]
    walk(num.ContentSequence if "ContentSequence" in num else [])
    return found


def _num(item) -> float:
    """A NUM item's value: the exact Floating Point Value when present, else the decimal string."""
    mv = item.MeasuredValueSequence[0]
    return float(mv.FloatingPointValue) if "FloatingPointValue" in mv else float(mv.NumericValue)


def _text(measurement, code: str) -> str | None:
    """The TEXT value of the item coded ``code`` (DCM) anywhere under a measurement."""
    stack = list(measurement)
    while stack:
        item = stack.pop()
        if item.ConceptNameCodeSequence[0].CodeValue == code and item.ValueType == "TEXT":
            return str(item.TextValue)
        stack.extend(item.get("ContentSequence", []))
    return None


def _laterality(site) -> str | None:
    if site is None or "ContentSequence" not in site:
        return None
    for item in site.ContentSequence:
        if item.ConceptNameCodeSequence[0].CodeValue == "272741003":  # Laterality
            return str(item.ConceptCodeSequence[0].CodeMeaning)
    return None
