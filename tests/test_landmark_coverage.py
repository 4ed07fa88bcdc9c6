"""Landmark coverage and low-confidence images in the cohort summary (`raoutcome validate`)."""
import pandas as pd

from raoutcome.cohort.landmark_coverage import coverage_lines, landmark_coverage

IMAGES = pd.DataFrame({"patient_id": ["a", "a", "b", "b"], "visit_id": "v0",
                       "view": ["hand_left", "foot_left", "hand_right", "spine_cervical"],
                       "path": ["h1.png", "f1.png", "h2.png", "s.png"]})


def test_coverage_counts_images_of_views_with_a_landmark_template():
    lm = pd.DataFrame({"path": ["h1.png", "h1.png", "s.png", "x.png"], "landmark": ["MCP2", "MCP3", "C2_c", "A"],
                       "x": [1.0, 2.0, 3.0, 4.0], "y": [1.0, 2.0, 3.0, 4.0]})
    images = pd.concat([IMAGES, pd.DataFrame({"patient_id": ["b"], "visit_id": "v0", "view": ["cspine_mr"],
                                              "path": ["x.png"]})], ignore_index=True)
    c = landmark_coverage(images, lm)  # an unregistered view does not count
    assert c["images"] == 4 and c["with_landmarks"] == 2
    assert coverage_lines(images, lm)[0] == "Landmark coverage: 2 of 4 hand/foot/spine images (50%)"
    assert "landmarks detect" in coverage_lines(IMAGES, None)[0]


def test_low_confidence_and_qc_flags_are_reported():
    lm = pd.DataFrame({"path": ["h1.png", "h1.png", "h2.png", "f1.png"], "landmark": ["MCP2", "MCP3", "MCP2", "MTP1"],
                       "x": 1.0, "y": 1.0, "confidence": [0.9, 0.1, 0.8, 0.95],
                       "qc": ["ok", "low_confidence", "mirrored;outlier", "ok"]})
    c = landmark_coverage(IMAGES, lm)
    assert c["with_landmarks"] == 3
    assert c["low_confidence"] == ["h1.png"]
    assert c["flagged"] == ["h1.png", "h2.png"]
    assert c["flags"] == {"low_confidence": 1, "mirrored": 1, "outlier": 1}
    lines = coverage_lines(IMAGES, lm)
    assert any(line.startswith("Low-confidence landmarks (< 0.3): 1 images (h1.png)") for line in lines)
    assert any("Landmark QC flags: 2 images" in line and "mirrored 1" in line for line in lines)
