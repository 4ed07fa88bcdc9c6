"""De-identification of pulled instances and the view they show.

Written copies keep a **whitelist** of attributes (pixel module, grey-scale transforms, spacing,
modality, body part, laterality, view position); everything else — all of the DICOM PS3.15 Annex E
Basic Application Level Confidentiality Profile attributes (names, IDs, dates, institution,
physicians, descriptions, comments, ...) and every private tag — is dropped. Patient ID and name
become the pseudonym, the study/series/SOP UIDs are replaced by keyed hashes (UIDs are on the
profile's list too), and the file says so (*Patient Identity Removed* = YES, *De-identification
Method*). Dates are not kept; the manifest keeps only intervals between a patient's studies
(the profile's *Retain Longitudinal Temporal Information with Modified Dates* option, in years).

References
----------
DICOM PS3.15 Annex E, Table E.1-1 (Basic Profile) and E.3.6 (longitudinal temporal option).
"""
from __future__ import annotations

__all__ = ["BASIC_PROFILE_TEXT", "KEEP", "deidentify", "view_of"]

from typing import Callable

from pydicom.dataset import Dataset, FileMetaDataset

#: Text-valued attributes of PS3.15 Table E.1-1 that identify or may identify a patient (the
#: sentinel test fills every one of them and checks that none reaches an output).
BASIC_PROFILE_TEXT: tuple[str, ...] = (
    "AccessionNumber", "AdditionalPatientHistory", "AdmissionID", "AdmittingDiagnosesDescription", "Allergies",
    "BranchOfService", "CountryOfResidence", "CurrentPatientLocation", "DerivationDescription",
    "DeviceSerialNumber", "EthnicGroup", "ImageComments", "InstitutionAddress", "InstitutionName",
    "InstitutionalDepartmentName", "IssuerOfPatientID", "MedicalAlerts", "MedicalRecordLocator", "MilitaryRank",
    "NameOfPhysiciansReadingStudy", "Occupation", "OperatorsName", "OtherPatientIDs", "OtherPatientNames",
    "PatientAddress", "PatientBirthName", "PatientComments", "PatientID", "PatientMotherBirthName",
    "PatientName", "PatientReligiousPreference", "PatientTelephoneNumbers", "PerformedProcedureStepDescription",
    "PerformedProcedureStepID", "PerformingPhysicianName", "PhysiciansOfRecord", "ProtocolName",
    "ReferringPhysicianAddress", "ReferringPhysicianName", "ReferringPhysicianTelephoneNumbers",
    "RegionOfResidence", "RequestingPhysician", "RequestingService", "ResponsibleOrganization",
    "ResponsiblePerson", "SeriesDescription", "StationName", "StudyDescription", "StudyID",
    "AcquisitionComments", "PatientState", "ScheduledPerformingPhysicianName", "RequestedProcedureDescription",
)

#: Attributes a written copy keeps (everything needed to decode and orient the image).
KEEP: frozenset[str] = frozenset({
    "SOPClassUID", "Modality", "BodyPartExamined", "ViewPosition", "ImageLaterality", "Laterality",
    "PatientOrientation", "ImageType", "SamplesPerPixel", "PhotometricInterpretation", "PlanarConfiguration",
    "Rows", "Columns", "BitsAllocated", "BitsStored", "HighBit", "PixelRepresentation", "NumberOfFrames",
    "PixelSpacing", "ImagerPixelSpacing", "PixelAspectRatio", "RescaleIntercept", "RescaleSlope", "RescaleType",
    "WindowCenter", "WindowWidth", "VOILUTFunction", "VOILUTSequence", "ModalityLUTSequence",
    "PresentationLUTShape", "PresentationIntentType", "LossyImageCompression", "LossyImageCompressionRatio",
    "LossyImageCompressionMethod", "SmallestImagePixelValue", "LargestImagePixelValue", "PixelPaddingValue",
    "PixelData", "FloatPixelData", "DoubleFloatPixelData",
})

_BODY_PARTS = {"HAND": "hand", "FOOT": "foot", "CSPINE": "spine_cervical", "LSPINE": "spine_lumbar"}
_SIDES = {"L": "left", "R": "right"}
_SPINE_POSITIONS = {"LL", "RL", "LATERAL", "LAT"}
_LIMB_POSITIONS = {"PA", "AP", "DP", "PD"}


def view_of(ds: Dataset) -> tuple[str | None, str | None]:
    """``(view, None)`` for a usable radiograph, or ``(None, reason)``.

    Body Part Examined gives the part (HAND, FOOT, CSPINE, LSPINE), Image Laterality (or series
    Laterality) the side, View Position must be frontal (PA/AP/DP) for hands and feet and lateral for
    spines when present.
    """
    modality = str(ds.get("Modality", "")).upper()
    if modality == "MR":
        return None, "MR instance: the manifest takes one radiograph per view (MR series are not pulled)"
    if modality not in ("DX", "CR"):
        return None, f"modality {modality or '(missing)'} is not a radiograph (DX/CR)"
    if "PixelData" not in ds:
        return None, "no pixel data"
    if str(ds.get("BurnedInAnnotation", "")).upper() == "YES":
        return None, "burned-in annotation (text in the pixels may identify the patient)"
    part = str(ds.get("BodyPartExamined", "")).strip().upper()
    if not part:
        return None, "no BodyPartExamined"
    if part not in _BODY_PARTS:
        return None, f"body part {part} is not scored (HAND, FOOT, CSPINE, LSPINE)"
    position = str(ds.get("ViewPosition", "")).strip().upper()
    base = _BODY_PARTS[part]
    if base.startswith("spine"):
        if position and position not in _SPINE_POSITIONS:
            return None, f"view position {position} (lateral expected for the spine)"
        return base, None
    side = str(ds.get("ImageLaterality", "") or ds.get("Laterality", "")).strip().upper()
    if side == "B":
        return None, "both sides on one image (laterality B)"
    if side not in _SIDES:
        return None, "no ImageLaterality / Laterality (L or R needed)"
    if position and position not in _LIMB_POSITIONS:
        return None, f"view position {position} (PA/AP expected)"
    return f"{base}_{_SIDES[side]}", None


def deidentify(ds: Dataset, pseudonym: str, uid: Callable[[str], str]) -> Dataset:
    """A copy of ``ds`` with only :data:`KEEP`, the pseudonym and replaced UIDs."""
    from pydicom.uid import PYDICOM_IMPLEMENTATION_UID

    out = Dataset()
    for elem in ds:
        if elem.keyword in KEEP:
            out.add(elem)
    out.PatientID = pseudonym
    out.PatientName = pseudonym
    out.StudyInstanceUID = uid(str(ds.StudyInstanceUID))
    out.SeriesInstanceUID = uid(str(ds.SeriesInstanceUID))
    out.SOPInstanceUID = uid(str(ds.SOPInstanceUID))
    out.PatientIdentityRemoved = "YES"
    out.DeidentificationMethod = "raoutcome: PS3.15 basic profile (whitelist), no dates"
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = out.SOPClassUID
    meta.MediaStorageSOPInstanceUID = out.SOPInstanceUID
    from pydicom.uid import ExplicitVRLittleEndian

    meta.TransferSyntaxUID = getattr(getattr(ds, "file_meta", None), "TransferSyntaxUID", None) or ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
    out.file_meta = meta
    return out
