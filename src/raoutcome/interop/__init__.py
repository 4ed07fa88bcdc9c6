"""Exchange with the outside: the RA2-DREAM challenge layout (:mod:`.ra2dream`), PACS / DICOM SR / FHIR."""
