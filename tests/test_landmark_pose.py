"""A radiograph's pose from its landmarks: the template matches the phantom, the fit recovers a known
rotation and scale (right-side views included), and posed patches of one joint stay alike however the
hand lies on the film."""
from __future__ import annotations

import numpy as np
import pytest

from raoutcome.anatomy import LANDMARK_TEMPLATES
from raoutcome.imaging.joint_anomaly import joint_patches
from raoutcome.imaging.landmark_pose import MIN_POSE_LANDMARKS, landmark_pose
from raoutcome.synth.phantom import Acquisition, ViewState, render_view

SIZE = 256


def _render(view, acq, seed=0):
    return render_view(view, ViewState(), SIZE, acq, np.random.default_rng(seed))


@pytest.mark.parametrize("view,part", [("hand_left", "hand"), ("foot_left", "foot")])
def test_the_template_is_the_phantom_in_a_standard_frame(view, part):
    _, _, marks = _render(view, Acquisition())
    assert set(marks) == set(LANDMARK_TEMPLATES[part])
    for name, (x, y) in marks.items():  # pixel centres at integers -> fractions of the side
        np.testing.assert_allclose(((x + 0.5) / SIZE, (y + 0.5) / SIZE), LANDMARK_TEMPLATES[part][name], atol=1e-4)


@pytest.mark.parametrize("view,mirror", [("hand_left", False), ("hand_right", True), ("foot_right", True)])
def test_the_fit_recovers_rotation_and_scale(view, mirror):
    angle, scale = np.deg2rad(7.0), 1.12
    _, _, marks = _render(view, Acquisition(rotation=angle, scale=scale, tx=0.03, ty=-0.02, mirror=mirror))
    pose = landmark_pose(marks, view, mirrored=mirror)
    assert abs(pose) == pytest.approx(scale * SIZE, rel=1e-3)
    # mirroring back to the canonical orientation turns the rotation's sign
    assert np.angle(pose) == pytest.approx(-angle if mirror else angle, abs=1e-3)
    assert landmark_pose(_render(view, Acquisition(mirror=mirror))[2], view, mirror) == pytest.approx(SIZE, rel=1e-3)


def test_no_pose_without_enough_template_landmarks_or_a_template():
    marks = {"MCP2": (10.0, 20.0), "MCP3": (20.0, 21.0), "XYZ": (5.0, 5.0)}
    assert MIN_POSE_LANDMARKS == 3 and landmark_pose(marks, "hand_left", False) is None
    marks["MCP4"] = (30.0, 23.0)
    assert landmark_pose(marks, "hand_left", False) is not None
    assert landmark_pose(marks, "spine_lumbar", False) is None
    assert landmark_pose(marks, None, False) is None
    assert landmark_pose({n: (4.0, 4.0) for n in ("MCP2", "MCP3", "MCP4")}, "hand_left", False) is None  # one point


def _mean_corr(a, b):
    return float(np.mean([np.corrcoef(a[n], b[n])[0, 1] for n in a]))


def test_posed_patches_of_a_joint_stay_alike_when_the_hand_turns_or_fills_more_of_the_film():
    img0, _, marks0 = _render("hand_left", Acquisition())
    ref = joint_patches(img0, marks0, pose=landmark_pose(marks0, "hand_left", False))
    for view, acq in (("hand_left", Acquisition(rotation=np.deg2rad(6), scale=1.08, tx=0.02)),
                      ("hand_right", Acquisition(rotation=np.deg2rad(-5), scale=0.93, mirror=True))):
        img, _, marks = _render(view, acq, seed=1)
        mirror = acq.mirror
        posed = joint_patches(img, marks, mirror, pose=landmark_pose(marks, view, mirror))
        square = joint_patches(img, marks, mirror)
        assert _mean_corr(ref, posed) > 0.93
        assert _mean_corr(ref, posed) > _mean_corr(ref, square) + 0.03


def test_a_standard_pose_gives_the_unposed_patches():
    img, _, marks = _render("hand_right", Acquisition(mirror=True))
    side = complex(SIZE)
    a, b = joint_patches(img, marks, True, pose=side), joint_patches(img, marks, True)
    for n in a:
        np.testing.assert_allclose(a[n], b[n], atol=1e-6)
