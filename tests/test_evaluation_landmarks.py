"""Landmark error metrics and grouping images by content (copies, mirrors, mirrored re-crops)."""
import numpy as np
import pandas as pd
import pytest
from PIL import Image

from raoutcome.evaluation.landmarks import content_groups, hand_width, landmark_table, radial_errors

REAL = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data" / "real-hands"


def test_radial_errors_and_table_hand_computed():
    truth = pd.DataFrame({"path": ["a", "a", "b"], "landmark": ["IP", "MP", "IP"], "x": [0.0, 10.0, 5.0],
                          "y": [0.0, 10.0, 5.0]})
    det = pd.DataFrame({"path": ["a", "a", "b"], "landmark": ["IP", "MP", "IP"], "x": [3.0, 10.0, 5.0],
                        "y": [4.0, 22.0, 5.0]})
    e = radial_errors(truth, det, {"a": 50.0, "b": 100.0})
    assert e.error_px.tolist() == [5.0, 12.0, 0.0]
    assert e.error_rel.tolist() == [0.1, 12.0 / 50.0, 0.0]
    t = landmark_table(e, radii_px=(10.0,)).set_index("landmark")
    assert t.loc["IP", "mre_px"] == 2.5 and t.loc["IP", "within_10px"] == 1.0
    assert t.loc["all", "within_10px"] == pytest.approx(2 / 3)
    assert hand_width({"MP": (0.0, 0.0), "MCP5": (3.0, 4.0), "IP": (9.0, 9.0)}) == 5.0


def test_content_groups_find_copies_mirrors_and_recrops(tmp_path):
    rng = np.random.default_rng(0)
    base = np.zeros((120, 90), np.uint8)
    base[20:100, 10:60] = (rng.random((80, 50)) * 200 + 30).astype(np.uint8)
    other = (rng.random((120, 90)) * 255).astype(np.uint8)
    mirrored = base[:, ::-1]
    recrop = np.zeros_like(base)
    recrop[:, 15:] = mirrored[:, :-15]
    files = {"a.png": base, "b.png": other, "c.png": mirrored, "d.png": recrop}
    for name, arr in files.items():
        Image.fromarray(arr).save(tmp_path / name)
    (tmp_path / "e.png").write_bytes((tmp_path / "a.png").read_bytes())
    g = content_groups([tmp_path / n for n in ("a.png", "b.png", "c.png", "d.png", "e.png")])
    ga = g[str(tmp_path / "a.png")]
    assert g[str(tmp_path / "c.png")] == ga and g[str(tmp_path / "d.png")] == ga and g[str(tmp_path / "e.png")] == ga
    assert g[str(tmp_path / "b.png")] != ga


@pytest.mark.skipif(not REAL.is_dir(), reason="real hands not available")
def test_real_hands_are_six_hands():
    files = sorted((REAL / "images").glob("*.png"))
    g = content_groups(files)
    by = {}
    for f in files:
        by.setdefault(g[str(f)], []).append(f.stem)
    groups = sorted(sorted(v) for v in by.values())
    assert len(groups) == 6
    assert ["test_img5_L", "test_img5_R", "test_img7_L", "test_img7_R"] in groups
    assert ["test_img6_L", "test_img6_R", "test_img8_L", "test_img8_R"] in groups
