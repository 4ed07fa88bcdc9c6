"""The Predictions dataset round-trips through netCDF and zarr and keeps its grid."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.errors import InputError
from raoutcome.predictions import embedding_frame, from_frame, load_predictions, save_predictions, to_frame


def _frame() -> pd.DataFrame:
    return pd.DataFrame({
        "patient_id": ["p1", "p1", "p2", "p1"],
        "visit_id": ["v0", "v1", "v0", "v10"],
        "time_years": [0.0, 1.0, 0.0, 2.5],
        "svdh": [3.0, 5.0, 10.0, 7.0],
        "haq": [0.5, 0.625, 1.0, np.nan],
    })


def test_grid_places_each_visit_and_leaves_gaps_nan():
    ds = from_frame(_frame(), embedding=np.arange(8, dtype=float).reshape(4, 2), folds={"p1": 0, "p2": 1})
    assert list(ds.visit_id.values) == ["v0", "v1", "v10"]  # numeric order, not lexical
    assert ds["svdh"].sel(patient_id="p1", visit_id="v10").item() == 7.0
    assert np.isnan(ds["svdh"].sel(patient_id="p2", visit_id="v1").item())
    assert np.isnan(ds["pain"]).all()  # a head that is absent stays NaN
    np.testing.assert_array_equal(ds["embedding"].sel(patient_id="p2", visit_id="v0").values, [4.0, 5.0])
    assert ds.attrs["cross_fitted"] == 1


@pytest.mark.parametrize("suffix", [".nc", ".zarr"])
def test_round_trip(tmp_path, suffix):
    ds = from_frame(_frame(), embedding=np.ones((4, 3)), attrs={"run": "r1"})
    path = save_predictions(ds, tmp_path / f"pred{suffix}")
    back = load_predictions(path)
    frame = to_frame(back).sort_values(["patient_id", "visit_id"]).reset_index(drop=True)
    assert len(frame) == 4  # the empty grid cell (p2, v1/v10) is dropped
    assert frame.loc[frame.visit_id == "v10", "svdh"].item() == 7.0
    assert embedding_frame(back).shape == (4, 2 + 3)
    assert back.attrs["run"] == "r1"


def test_duplicates_and_bad_suffix_rejected(tmp_path):
    dup = pd.concat([_frame(), _frame().iloc[:1]])
    with pytest.raises(InputError):
        from_frame(dup)
    with pytest.raises(InputError, match="must end in .nc or .zarr"):
        save_predictions(from_frame(_frame()), tmp_path / "pred.csv")
    assert not list(tmp_path.iterdir())  # nothing half-written
