"""Joint-level density targets: per-joint readings located by landmarks, in the model frame."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from raoutcome.imaging.dataset import Augment, PatientSequences, collate_patients
from raoutcome.imaging.joint_targets import JointTargets, shift_points
from raoutcome.imaging.transforms import preprocess
from raoutcome.models.losses import MultitaskLoss, joint_density_loss, joint_density_targets

SIZE = 32


def _cohort(view: str, marks: dict[str, tuple[float, float]], readings: list[tuple[str, str, float]]):
    joints = pd.DataFrame([{"patient_id": "p1", "visit_id": "v0", "joint": f"{view}:{site}", "kind": kind,
                            "score": score} for site, kind, score in readings])
    landmarks = pd.DataFrame([{"path": "a.png", "landmark": k, "x": x, "y": y} for k, (x, y) in marks.items()])
    return SimpleNamespace(joints=joints, landmarks=landmarks)


def _dot_image(rows: int, cols: int, x: int, y: int) -> np.ndarray:
    img = np.zeros((rows, cols), np.float32)
    img[y - 1:y + 2, x - 1:x + 2] = 0.5
    img[y, x] = 1.0  # the peak marks the landmark pixel itself
    return img


@pytest.mark.parametrize("view", ["hand_left", "hand_right"])
@pytest.mark.parametrize("rows,cols", [(120, 60), (50, 100), (64, 64)])
def test_points_land_where_preprocessing_puts_the_joint(view, rows, cols):
    """A bright dot drawn at the landmark ends up, after mirroring and letter-boxing, at the point."""
    x, y = cols // 3, rows // 4
    cohort = _cohort(view, {"MCP2": (x, y), "MP": (cols // 2, rows // 2)},
                     [("MCP2", "erosion", 2.0), ("MCP2", "jsn", 1.0), ("MCP1", "jsn", 3.0)])
    jt = JointTargets(cohort, lambda path: (rows, cols), SIZE)
    pts = jt.points("p1", "v0", view, "a.png", "/abs/a.png")
    assert pts is not None and pts.shape == (3, 4)
    frame = preprocess(_dot_image(rows, cols, x, y), view, SIZE)
    peak_y, peak_x = np.unravel_index(np.argmax(frame), frame.shape)
    erosion = pts[(pts[:, 0] == 1)][0]
    assert erosion[3] == 2.0
    assert abs(erosion[1] * SIZE - 0.5 - peak_x) <= 1.0 and abs(erosion[2] * SIZE - 0.5 - peak_y) <= 1.0
    # the thumb MCP reading found its landmark under the real-hand name "MP"
    assert pts[:, 3].sum() == 6.0


def test_an_image_with_an_unlocated_or_unread_joint_is_not_supervised():
    marks = {"MCP2": (10, 10)}
    missing_landmark = _cohort("hand_left", marks, [("MCP2", "erosion", 1.0), ("PIP3", "erosion", 0.0)])
    assert JointTargets(missing_landmark, lambda p: (40, 40), SIZE).points("p1", "v0", "hand_left", "a.png", "a") is None
    nan_score = _cohort("hand_left", marks, [("MCP2", "erosion", float("nan"))])
    assert JointTargets(nan_score, lambda p: (40, 40), SIZE).points("p1", "v0", "hand_left", "a.png", "a") is None
    no_tables = SimpleNamespace(joints=None, landmarks=None)
    assert not JointTargets(no_tables, lambda p: (40, 40), SIZE).available


def test_points_follow_the_augmentation_shift():
    rows = cols = SIZE
    x, y = 12, 20
    cohort = _cohort("hand_left", {"MCP2": (x, y)}, [("MCP2", "erosion", 1.0)])
    pts = JointTargets(cohort, lambda p: (rows, cols), SIZE).points("p1", "v0", "hand_left", "a.png", "a")
    image = preprocess(_dot_image(rows, cols, x, y), "hand_left", SIZE)[None]
    aug = Augment(shift=4, contrast=0.0, brightness=0.0)
    moved, (dy, dx) = aug.apply(image, np.random.default_rng(3))
    assert (dy, dx) != (0, 0)
    np.testing.assert_array_equal(moved, aug(image, np.random.default_rng(3)))  # same draws as __call__
    shifted = shift_points(pts, dy, dx, SIZE)
    peak_y, peak_x = np.unravel_index(np.argmax(moved[0]), moved[0].shape)
    assert abs(shifted[0, 1] * SIZE - 0.5 - peak_x) <= 0.5 and abs(shifted[0, 2] * SIZE - 0.5 - peak_y) <= 0.5
    assert shift_points(pts, 0, -SIZE, SIZE) is None  # pushed out of the frame: no longer known


def test_density_targets_sum_points_per_cell_and_the_loss_reads_them():
    maps = torch.zeros(2, 2, 4, 4)
    points = torch.tensor([[0, 1, 0.10, 0.10, 2.0], [0, 1, 0.20, 0.15, 1.0], [0, 0, 0.9, 0.6, 4.0],
                           [1, 0, 0.5, 0.5, 1.0]])
    target = joint_density_targets(maps, points)
    assert target[0, 1, 0, 0] == 3.0 and target[0, 0, 2, 3] == 4.0 and target[1, 0, 2, 2] == 1.0
    assert target.sum() == 8.0
    supervised = torch.tensor([True, False])
    exact = target.clone().requires_grad_(True)
    assert float(joint_density_loss(exact, points, supervised)) == 0.0
    wrong = torch.full((2, 2, 4, 4), 0.5, requires_grad=True)
    loss = joint_density_loss(wrong, points, supervised)
    assert float(loss) > 0
    loss.backward()
    assert wrong.grad[0].abs().sum() > 0 and wrong.grad[1].abs().sum() == 0  # image 1 is not supervised
    assert float(joint_density_loss(wrong, points, torch.tensor([False, False]))) == 0.0


def test_multitask_loss_adds_the_joint_term_only_when_asked():
    out = {"lesion_density": torch.full((1, 2, 2, 2), 1.0), "svdh": torch.ones(1, 1), "jsn": torch.zeros(1, 1),
           "erosion": torch.ones(1, 1)}
    batch = {"visit_mask": torch.ones(1, 1, dtype=torch.bool), "target_svdh": torch.ones(1, 1),
             "target_jsn": torch.zeros(1, 1), "target_erosion": torch.ones(1, 1),
             "joint_points": torch.tensor([[0, 1, 0.1, 0.1, 3.0]]), "joint_supervised": torch.tensor([True])}
    base, parts = MultitaskLoss(("svdh",), "fixed")(out, batch)
    assert "joints" not in parts
    with_joints, parts = MultitaskLoss(("svdh",), "fixed", joint_weight=2.0)(out, batch)
    assert parts["joints"] > 0
    assert float(with_joints - base) == pytest.approx(2.0 * parts["joints"])


def test_a_simulated_cohort_supervises_every_image_and_the_points_add_up_to_its_readings(small_study):
    from raoutcome.cohort import load
    from raoutcome.imaging.cache import ImageCache

    cohort = load(small_study["cohort"])
    cache = ImageCache(small_study["out_dir"] / "jt_cache", 64)
    ids = cohort.patient_ids[:3]
    ds = PatientSequences(cohort, cache, ids, joint_targets=JointTargets(cohort, cache.source_shape, 64))
    batch = collate_patients([ds[i] for i in range(len(ds))])
    assert bool(batch["joint_supervised"].all())
    pts = batch["joint_points"]
    per_image = torch.zeros(len(batch["images"])).index_add(0, pts[:, 0].long(), pts[:, 4])
    joints = cohort.joints.assign(view=cohort.joints["joint"].str.split(":").str[0])
    readings = joints.groupby(["patient_id", "visit_id", "view"])["score"].sum()
    expected = [readings[(pid, ds.visit_ids[p][t], view)]
                for p, pid in enumerate(ids) for _, view, t, _ in ds.images[p]]
    torch.testing.assert_close(per_image, torch.tensor(expected, dtype=torch.float32))
    assert per_image.sum() > 0


def test_the_small_study_trained_its_maps_on_the_joints(small_study):
    history = json.loads((small_study["run"] / "metrics.json").read_text())
    members = history["members"] if "members" in history else history
    text = json.dumps(members)
    assert '"joints"' in text
