"""Attributes of the DICOM Basic Application Level Confidentiality Profile, by keyword.

Built from DICOM PS3.15 (2024 editions), Annex E, Table E.1-1 "Application Level Confidentiality
Profile Attributes", column "Basic Prof.": every attribute whose Basic Profile action is not K
(keep), i.e. D, Z, X, U, C or a combination (X/Z, X/D, X/Z/D, X/Z/U*, Z/D). pydicom ships no such
list. Keywords are pydicom's data-dictionary keywords; the test checks each one resolves to a tag.
https://dicom.nema.org/medical/dicom/current/output/chtml/part15/chapter_E.html#table_E.1-1
"""
from __future__ import annotations

BASIC_PROFILE: tuple[str, ...] = (
    # ---- (0008,xxxx) study, series, instance, equipment
    "InstanceCreationDate", "InstanceCreationTime", "InstanceCreatorUID", "SOPInstanceUID",
    "StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate", "OverlayDate", "CurveDate",
    "AcquisitionDateTime", "StudyTime", "SeriesTime", "AcquisitionTime", "ContentTime", "OverlayTime",
    "CurveTime", "AccessionNumber", "IssuerOfAccessionNumberSequence", "InstitutionName", "InstitutionAddress",
    "InstitutionCodeSequence", "ReferringPhysicianName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "ReferringPhysicianIdentificationSequence", "ConsultingPhysicianName",
    "ConsultingPhysicianIdentificationSequence", "TimezoneOffsetFromUTC", "StationName", "StudyDescription",
    "SeriesDescription", "InstitutionalDepartmentName", "InstitutionalDepartmentTypeCodeSequence",
    "PhysiciansOfRecord", "PhysiciansOfRecordIdentificationSequence", "PerformingPhysicianName",
    "PerformingPhysicianIdentificationSequence", "NameOfPhysiciansReadingStudy",
    "PhysiciansReadingStudyIdentificationSequence", "OperatorsName", "OperatorIdentificationSequence",
    "AdmittingDiagnosesDescription", "AdmittingDiagnosesCodeSequence", "ReferencedStudySequence",
    "ReferencedPerformedProcedureStepSequence", "ReferencedPatientSequence", "ReferencedImageSequence",
    "ReferencedSOPInstanceUID", "DerivationDescription", "SourceImageSequence", "IrradiationEventUID",
    "StorageMediaFileSetUID", "ReferencedFrameOfReferenceUID", "RequestAttributesSequence",
    "ContextGroupExtensionCreatorUID", "OriginalAttributesSequence",
    # ---- (0010,xxxx) patient
    "PatientName", "PatientID", "IssuerOfPatientID", "TypeOfPatientID", "IssuerOfPatientIDQualifiersSequence",
    "PatientBirthDate", "PatientBirthTime", "PatientSex", "PatientInsurancePlanCodeSequence",
    "PatientPrimaryLanguageCodeSequence", "PatientPrimaryLanguageModifierCodeSequence", "OtherPatientIDs",
    "OtherPatientNames", "OtherPatientIDsSequence", "PatientBirthName", "PatientAge", "PatientSize",
    "PatientWeight", "PatientAddress", "InsurancePlanIdentification", "PatientMotherBirthName", "MilitaryRank",
    "BranchOfService", "MedicalRecordLocator", "MedicalAlerts", "Allergies", "CountryOfResidence",
    "RegionOfResidence", "PatientTelephoneNumbers", "EthnicGroup", "Occupation", "SmokingStatus",
    "AdditionalPatientHistory", "PregnancyStatus", "LastMenstrualDate", "PatientReligiousPreference",
    "PatientSexNeutered", "ResponsiblePerson", "ResponsiblePersonRole", "ResponsibleOrganization",
    "PatientComments", "PatientBreedDescription", "PatientSpeciesDescription",
    # ---- (0012,xxxx) clinical trial
    "ClinicalTrialSponsorName", "ClinicalTrialProtocolID", "ClinicalTrialProtocolName", "ClinicalTrialSiteID",
    "ClinicalTrialSiteName", "ClinicalTrialSubjectID", "ClinicalTrialSubjectReadingID", "ClinicalTrialTimePointID",
    "ClinicalTrialTimePointDescription", "ClinicalTrialCoordinatingCenterName",
    "ClinicalTrialProtocolEthicsCommitteeName", "ClinicalTrialProtocolEthicsCommitteeApprovalNumber",
    "ClinicalTrialSeriesID", "ClinicalTrialSeriesDescription",
    # ---- (0018,xxxx) acquisition, device
    "ContrastBolusAgent", "DeviceSerialNumber", "DeviceUID", "PlateID", "GeneratorID", "CassetteID",
    "GantryID", "DetectorID", "ProtocolName", "AcquisitionDeviceProcessingDescription", "AcquisitionComments",
    "DateOfLastCalibration", "TimeOfLastCalibration", "DateOfLastDetectorCalibration",
    "DateOfSecondaryCapture", "TimeOfSecondaryCapture", "DigitalSignatureUID", "ModifyingDeviceID",
    "ModifyingDeviceManufacturer", "ModifiedImageDescription", "TargetUID",
    # ---- (0020,xxxx) relationship
    "StudyInstanceUID", "SeriesInstanceUID", "StudyID", "FrameOfReferenceUID",
    "SynchronizationFrameOfReferenceUID", "ImageComments", "ConcatenationUID", "DimensionOrganizationUID",
    "UID",
    # ---- (0028,xxxx) image
    "LargePaletteColorLookupTableUID",
    # ---- (0032,xxxx) study (retired)
    "StudyIDIssuer", "ScheduledStudyLocation", "ScheduledStudyLocationAETitle", "ReasonForStudy",
    "RequestingPhysician", "RequestingService", "RequestedProcedureDescription", "RequestedContrastAgent",
    "StudyComments", "StudyVerifiedDate", "StudyVerifiedTime", "StudyReadDate", "StudyReadTime",
    "StudyArrivalDate", "StudyArrivalTime", "StudyCompletionDate", "StudyCompletionTime",
    # ---- (0038,xxxx) visit
    "AdmissionID", "IssuerOfAdmissionID", "IssuerOfAdmissionIDSequence", "ServiceEpisodeID",
    "ServiceEpisodeDescription", "RouteOfAdmissions", "AdmittingDate", "AdmittingTime", "DischargeDate",
    "DischargeTime", "DischargeDiagnosisDescription", "SpecialNeeds", "CurrentPatientLocation",
    "PatientInstitutionResidence", "PatientState", "VisitComments",
    # ---- (0040,xxxx) procedure
    "ScheduledStationAETitle", "ScheduledProcedureStepStartDate", "ScheduledProcedureStepStartTime",
    "ScheduledProcedureStepEndDate", "ScheduledProcedureStepEndTime", "ScheduledPerformingPhysicianName",
    "ScheduledProcedureStepDescription", "ScheduledPerformingPhysicianIdentificationSequence",
    "ScheduledStationName", "ScheduledProcedureStepLocation", "PreMedication", "PerformedStationAETitle",
    "PerformedStationName", "PerformedLocation", "PerformedProcedureStepStartDate",
    "PerformedProcedureStepStartTime", "PerformedProcedureStepEndDate", "PerformedProcedureStepEndTime",
    "PerformedProcedureStepID", "PerformedProcedureStepDescription", "RequestedProcedureID",
    "ReasonForTheRequestedProcedure", "PatientTransportArrangements", "RequestedProcedureLocation",
    "NamesOfIntendedRecipientsOfResults", "IntendedRecipientsOfResultsIdentificationSequence",
    "RequestedProcedureComments", "ReasonForTheImagingServiceRequest", "IssueDateOfImagingServiceRequest",
    "IssueTimeOfImagingServiceRequest", "OrderEnteredBy", "OrderEntererLocation", "OrderCallbackPhoneNumber",
    "PlacerOrderNumberImagingServiceRequest", "FillerOrderNumberImagingServiceRequest",
    "ImagingServiceRequestComments", "ConfidentialityConstraintOnPatientDataDescription",
    "PersonName", "PersonAddress", "PersonTelephoneNumbers", "VerifyingOrganization", "VerifyingObserverName",
    "VerifyingObserverSequence", "VerificationDateTime", "ObservationDateTime", "TextValue", "DateTime",
    "Date", "Time", "PersonIdentificationCodeSequence", "HumanPerformerName", "HumanPerformerOrganization",
    "ContentCreatorName", "ReferencedSOPInstanceUIDInFile", "AuthorObserverSequence",
    "ParticipantSequence", "CustodialOrganizationSequence", "ContentSequence",
    # ---- (0070,xxxx), (0088,xxxx), (3006,xxxx), (300A,xxxx), (4000/4008), others
    "ContentCreatorIdentificationCodeSequence", "GraphicAnnotationSequence", "TopicTitle", "TopicSubject",
    "TopicAuthor", "TopicKeywords", "StorageMediaFileSetID", "IconImageSequence",
    "StructureSetLabel", "StructureSetName", "StructureSetDescription", "StructureSetDate", "StructureSetTime",
    "ROIName", "ROIDescription", "ROIInterpreter", "ROIGenerationDescription", "RTPlanLabel", "RTPlanName",
    "RTPlanDescription", "RTPlanDate", "RTPlanTime", "PrescriptionDescription", "FractionGroupDescription",
    "DoseReferenceUID", "DoseReferenceDescription", "BeamDescription", "TreatmentMachineName",
    "SourceSerialNumber", "TreatmentDate", "TreatmentTime", "ReviewDate", "ReviewTime", "ReviewerName",
    "Arbitrary", "TextComments", "ResultsIDIssuer", "InterpretationRecorder", "InterpretationTranscriber",
    "InterpretationText", "InterpretationAuthor", "InterpretationApproverSequence", "PhysicianApprovingInterpretation",
    "InterpretationDiagnosisDescription", "ResultsDistributionListSequence", "DistributionName",
    "DistributionAddress", "InterpretationIDIssuer", "InterpretationID", "ResultsID", "ResultsComments",
    "ReportProductionStatusTrial", "DigitalSignaturesSequence", "DataSetTrailingPadding",
    "AcquisitionContextSequence", "ModifiedAttributesSequence", "EncryptedAttributesSequence",
    "MACParametersSequence", "FailedSOPInstanceUIDList", "ReferencedSOPInstanceMACSequence",
    "OriginalAttributesSequence", "CreatorVersionUID", "SpecimenAccessionNumber", "ContainerIdentifier",
    "SpecimenIdentifier", "SpecimenUID", "SpecimenDetailedDescription", "SlideIdentifier",
    "DeviceDescription", "ManufacturerDeviceIdentifier", "LongDeviceDescription", "DeviceAlternateIdentifier",
    "UniqueDeviceIdentifier", "DetectorManufacturerName", "DetectorManufacturerModelName",
    "SourceManufacturer", "XRayDetectorID", "XRayDetectorLabel", "XRaySourceID", "PerformedProcedureStepDescription",
    "ProcedureStepLabel", "WorklistLabel", "PerformingPhysicianName",
)
