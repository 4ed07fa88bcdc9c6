"""FHIR R4 Observation resources for one study's results (optional output of ``pacs score``).

One ``Observation`` per reported value (each visit-level outcome, each joint's JSN/erosion score),
collected in a ``Bundle`` of type ``collection``. ``status`` is ``preliminary`` (no human has
verified the result, as in the SR), the code is the same private concept as in the SR
(system ``urn:raoutcome:codes``), a joint's ``bodySite`` carries the site and SNOMED CT laterality,
its SD and class probabilities are ``component`` entries. Subject and study are the pseudonym and
the study key: this file is an output, so it holds nothing from the pulled headers.

References
----------
HL7 FHIR R4 Observation (http://hl7.org/fhir/R4/observation.html); UCUM units.
"""
from __future__ import annotations

__all__ = ["observations", "bundle"]

from raoutcome.interop import codes
from raoutcome.interop.results import VisitResult, outcome_label
from raoutcome.interop.sr import Algorithm

SYSTEM = "urn:raoutcome:codes"
UCUM = "http://unitsofmeasure.org"
SCT = "http://snomed.info/sct"


def _quantity(value: float, unit: str) -> dict:
    return {"value": float(value), "unit": unit, "system": UCUM, "code": unit}


def observations(result: VisitResult, study_key: str, algorithm: Algorithm) -> list[dict]:
    common = {"resourceType": "Observation", "status": "preliminary",
              "subject": {"reference": f"Patient/{result.patient_id}"},
              "derivedFrom": [{"identifier": {"system": "urn:raoutcome:study-key", "value": study_key}}],
              "device": {"display": f"{algorithm.name} {algorithm.version} (run {algorithm.run})"},
              "category": [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/observation-category",
                                        "code": "imaging"}]}]}
    out = []
    for name, value in result.outcomes.items():
        code, label = codes.outcome_concept(name)
        unit = outcome_label(name)[1]
        obs = {**common, "id": f"{study_key}-{name}",
               "code": {"coding": [{"system": SYSTEM, "code": code, "display": label}], "text": label},
               "valueQuantity": _quantity(value, unit)}
        if name in result.outcome_sd:
            obs["component"] = [{"code": {"coding": [{"system": SCT, "code": "386136009",
                                                      "display": "Standard deviation"}]},
                                 "valueQuantity": _quantity(result.outcome_sd[name], unit)}]
        out.append(obs)
    for r in result.joints:
        code, label = codes.KIND_CONCEPTS[r.kind]
        site = codes.site_concept(r.view, r.site)
        lat = codes.laterality_concept(r.view)
        body = {"coding": [{"system": SYSTEM, "code": site.value, "display": site.meaning}], "text": r.joint}
        if lat is not None:
            body["extension"] = [{"url": "http://hl7.org/fhir/StructureDefinition/bodySite-laterality",
                                  "valueCodeableConcept": {"coding": [{"system": SCT, "code": lat.value,
                                                                       "display": lat.meaning}]}}]
        components = []
        if r.sd is not None:
            components.append({"code": {"coding": [{"system": SCT, "code": "386136009",
                                                    "display": "Standard deviation"}]},
                               "valueQuantity": _quantity(r.sd, "{score}")})
        for k, p in enumerate(r.probs or ()):
            c = codes.probability_concept(k)
            components.append({"code": {"coding": [{"system": SYSTEM, "code": c.value, "display": c.meaning}]},
                               "valueQuantity": _quantity(p, "1")})
        obs = {**common, "id": f"{study_key}-{r.joint.replace(':', '-')}-{r.kind}",
               "code": {"coding": [{"system": SYSTEM, "code": code, "display": label}], "text": label},
               "bodySite": body, "valueQuantity": _quantity(r.score, "{score}")}
        if components:
            obs["component"] = components
        out.append(obs)
    return out


def bundle(result: VisitResult, study_key: str, algorithm: Algorithm) -> dict:
    return {"resourceType": "Bundle", "type": "collection", "id": study_key,
            "entry": [{"resource": o} for o in observations(result, study_key, algorithm)]}
