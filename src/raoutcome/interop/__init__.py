"""Exchange with the outside world: PACS pull and push (DICOMweb, DIMSE), DICOM SR (highdicom), FHIR JSON, and the
RA2-DREAM challenge layout (:mod:`.ra2dream`: import a challenge table as a cohort, export a submission).

Nothing here computes a score: scoring is :mod:`raoutcome.training`; this package moves images in
and results out. The heavy optional dependencies (``highdicom``, ``dicomweb-client``, ``pynetdicom``,
the ``[pacs]`` extra) are imported inside the modules that need them.
"""
