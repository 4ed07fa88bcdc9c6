"""The Cohort object: types, cohort.toml mapping, dates, xarray view, subset, events, summary."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from raoutcome.anatomy import OUTCOMES
from raoutcome.cohort import Cohort, load, validate
from raoutcome.errors import CohortValidationError


def test_tables_and_types(tiny_cohort):
    cohort = load(tiny_cohort)
    assert isinstance(cohort, Cohort)
    assert cohort.root == tiny_cohort.resolve()
    v = cohort.visits
    assert list(v.columns[:3]) == ["patient_id", "visit_id", "time_years"]
    assert all(v[c].dtype == np.float64 for c in ("time_years", *OUTCOMES))
    assert v.equals(v.sort_values(["patient_id", "time_years"]).reset_index(drop=True))
    assert cohort.events["observed"].dtype == np.int64
    assert list(cohort.events.columns) == ["patient_id", "event", "time_years", "observed"]
    assert list(cohort.images.columns) == ["patient_id", "visit_id", "view", "path"]
    assert cohort.patients["age"].dtype.kind in "if"  # covariates typed by inference
    assert cohort.image_path(cohort.images.loc[0, "path"]).is_file()
    assert cohort.joints is not None and cohort.landmarks is not None


def test_absent_outcome_columns_are_nan(tiny_cohort):
    frame = pd.read_csv(tiny_cohort / "visits.csv").drop(columns=["msasss", "das28"])
    frame.to_csv(tiny_cohort / "visits.csv", index=False)
    (tiny_cohort / "joints.csv").unlink()
    (tiny_cohort / "landmarks.csv").unlink()
    cohort = load(tiny_cohort)
    assert cohort.visits["msasss"].isna().all() and cohort.visits["das28"].isna().all()
    assert cohort.joints is None and cohort.landmarks is None


def test_dates_become_years_since_first_visit(tiny_cohort):
    visits = pd.read_csv(tiny_cohort / "visits.csv").drop(columns=["time_years"])
    # p1: first visit 2020-01-01, then 2021-01-01 (366 days, leap year), then 2022-07-02
    dates = {"v0": "2020-01-01", "v1": "2021-01-01", "v2": "2022-07-02"}
    visits["date"] = visits["visit_id"].map(dates)
    visits.loc[visits.patient_id == "p2", "date"] = ["2019-05-10", "2018-05-10", "2020-05-10"]  # unsorted rows
    visits.to_csv(tiny_cohort / "visits.csv", index=False)
    events = pd.read_csv(tiny_cohort / "events.csv").drop(columns=["time_years"])
    events["date"] = "2021-07-01"
    events.loc[events.patient_id == "p2", "date"] = "2018-05-10"
    events.to_csv(tiny_cohort / "events.csv", index=False)
    cohort = load(tiny_cohort)
    p1 = cohort.visits[cohort.visits.patient_id == "p1"]
    np.testing.assert_allclose(p1["time_years"], [0.0, 366 / 365.25, 913 / 365.25])
    p2 = cohort.visits[cohort.visits.patient_id == "p2"]
    assert p2["visit_id"].tolist() == ["v1", "v0", "v2"]  # sorted by time, not by file order
    np.testing.assert_allclose(p2["time_years"], [0.0, 365 / 365.25, 731 / 365.25])
    ev = cohort.events.set_index("patient_id")
    assert ev.loc["p1", "time_years"] == pytest.approx(547 / 365.25)
    assert ev.loc["p2", "time_years"] == 0.0
    assert pd.api.types.is_datetime64_any_dtype(cohort.visits["date"])


def test_event_before_first_visit_date_is_negative(tiny_cohort):
    visits = pd.read_csv(tiny_cohort / "visits.csv").drop(columns=["time_years"])
    visits["date"] = visits["visit_id"].map({"v0": "2020-01-01", "v1": "2021-01-01", "v2": "2022-01-01"})
    visits.to_csv(tiny_cohort / "visits.csv", index=False)
    events = pd.read_csv(tiny_cohort / "events.csv").drop(columns=["time_years"])
    events["date"] = ["2019-06-01"] + ["2021-06-01"] * (len(events) - 1)
    events.to_csv(tiny_cohort / "events.csv", index=False)
    problems = validate(tiny_cohort)
    assert [(p.file, p.row, p.column, p.value) for p in problems] == [("events.csv", 1, "date", "2019-06-01")]


def test_cohort_toml_maps_files_columns_views_and_events(tiny_cohort):
    visits = pd.read_csv(tiny_cohort / "visits.csv").rename(columns={"svdh_total": "mtss", "patient_id": "PatID"})
    visits.to_csv(tiny_cohort / "my_visits.csv", index=False)
    (tiny_cohort / "visits.csv").unlink()
    images = pd.read_csv(tiny_cohort / "images.csv")
    images["view"] = images["view"].map({"hand_left": "LH", "hand_right": "RH"})
    images.to_csv(tiny_cohort / "images.csv", index=False)
    events = pd.read_csv(tiny_cohort / "events.csv")
    events["event"] = "AAS"
    events.to_csv(tiny_cohort / "events.csv", index=False)
    spec = tiny_cohort / "cohort.toml"
    spec.write_text(
        '[tables]\nvisits = "my_visits.csv"\n'
        '[columns.visits]\nmtss = "svdh_total"\nPatID = "patient_id"\n'
        '[views]\n"LH" = "hand_left"\n"RH" = "hand_right"\n'
        '[events]\n"AAS" = "deformity"\n'
    )
    for path in (spec, tiny_cohort):  # the toml itself, or the folder that holds it
        cohort = load(path)
        assert cohort.visits["svdh_total"].notna().all()
        assert set(cohort.images["view"]) == {"hand_left", "hand_right"}
        assert set(cohort.events["event"]) == {"deformity"}
        assert len(cohort.event_table()) == 6


def test_cohort_toml_problems_name_the_user_column(tiny_cohort):
    visits = pd.read_csv(tiny_cohort / "visits.csv").rename(columns={"haq": "HAQ_DI"})
    visits.loc[2, "HAQ_DI"] = 3.5
    visits.to_csv(tiny_cohort / "visits.csv", index=False)
    (tiny_cohort / "cohort.toml").write_text('[columns.visits]\nHAQ_DI = "haq"\n')
    problems = validate(tiny_cohort)
    assert [(p.file, p.row, p.column, p.value) for p in problems] == [("visits.csv", 3, "HAQ_DI", "3.5")]


def test_bad_cohort_toml_reports_every_problem(tiny_cohort):
    (tiny_cohort / "cohort.toml").write_text(
        'colour = "red"\n[tables]\nvisits = "nope.csv"\nscans = "x.csv"\n'
        '[columns.visits]\nmtss = "svdh_total"\n[views]\n"LH" = "hand_middle"\n'
    )
    problems = validate(tiny_cohort)
    text = "\n".join(map(str, problems))
    assert all(p.file == "cohort.toml" for p in problems[:4])
    assert "unknown key" in text and "colour" in text
    assert "table file does not exist" in text and "nope.csv" in text
    assert "unknown table" in text and "scans" in text
    assert "unknown view" in text and "hand_middle" in text
    (tiny_cohort / "cohort.toml").write_text("[tables\n")
    assert "cannot read the cohort spec" in validate(tiny_cohort)[0].message


def test_toml_rename_of_missing_column(tiny_cohort):
    (tiny_cohort / "cohort.toml").write_text('[columns.visits]\nmtss = "svdh_total"\n')
    problems = validate(tiny_cohort)
    assert [(p.file, p.column) for p in problems] == [("cohort.toml", "mtss")]


def test_toml_root_points_at_images(tiny_cohort, tmp_path):
    spec_dir = tmp_path / "spec"
    spec_dir.mkdir()
    (spec_dir / "cohort.toml").write_text(
        f'root = "{tiny_cohort.as_posix()}"\n[tables]\n'
        + "".join(f'{n} = "{(tiny_cohort / (n + ".csv")).as_posix()}"\n'
                  for n in ("patients", "visits", "images", "events")))
    cohort = load(spec_dir / "cohort.toml")
    assert cohort.root == tiny_cohort.resolve()
    assert cohort.joints is None  # only the named tables are read from elsewhere


def test_to_xarray_shapes_and_values(tiny_cohort):
    visits = pd.read_csv(tiny_cohort / "visits.csv")
    visits = visits[~((visits.patient_id == "p2") & (visits.visit_id == "v2"))]
    visits.to_csv(tiny_cohort / "visits.csv", index=False)
    images = pd.read_csv(tiny_cohort / "images.csv")
    images[~((images.patient_id == "p2") & (images.visit_id == "v2"))].to_csv(tiny_cohort / "images.csv", index=False)
    patients = pd.read_csv(tiny_cohort / "patients.csv")
    pd.concat([patients, pd.DataFrame({"patient_id": ["p7"]})]).to_csv(tiny_cohort / "patients.csv", index=False)
    cohort = load(tiny_cohort)
    ds = cohort.to_xarray()
    assert dict(ds.sizes) == {"patient_id": 7, "visit_id": 3}
    assert set(OUTCOMES) | {"time_years", "n_visits"} <= set(ds.data_vars)
    assert ds["visit_id"].values.tolist() == ["v0", "v1", "v2"]  # by time
    assert np.isnan(ds["time_years"].sel(patient_id="p2", visit_id="v2").item())
    assert np.isnan(ds["svdh_total"].sel(patient_id="p2", visit_id="v2").item())
    assert ds["n_visits"].sel(patient_id="p2").item() == 2
    assert ds["n_visits"].sel(patient_id="p7").item() == 0
    assert np.isnan(ds["time_years"].sel(patient_id="p7")).all()
    row = cohort.visits[(cohort.visits.patient_id == "p3") & (cohort.visits.visit_id == "v1")].iloc[0]
    assert ds["haq"].sel(patient_id="p3", visit_id="v1").item() == row["haq"]
    assert ds["time_years"].sel(patient_id="p3", visit_id="v1").item() == row["time_years"]
    assert np.isnan(ds["msasss"].sel(patient_id="p1", visit_id="v1").item())  # a gap stays NaN


def test_cohort_and_predictions_share_one_grid_with_visits_by_time(tiny_cohort):
    from raoutcome.predictions import from_frame

    for table in ("visits", "images", "joints"):
        frame = pd.read_csv(tiny_cohort / f"{table}.csv")
        frame["visit_id"] = frame["visit_id"].map({"v0": "baseline", "v1": "y1", "v2": "y2"})
        frame.to_csv(tiny_cohort / f"{table}.csv", index=False)
    cohort = load(tiny_cohort)
    ds = cohort.to_xarray()
    assert ds["visit_id"].values.tolist() == ["baseline", "y1", "y2"]  # by time, not by name
    pred = from_frame(cohort.visits[["patient_id", "visit_id", "time_years"]].sample(frac=1.0, random_state=0)
                      .assign(haq=cohort.visits["haq"]))
    assert pred["visit_id"].values.tolist() == ds["visit_id"].values.tolist()
    assert set(pred["patient_id"].values) == set(ds["patient_id"].values)
    aligned = ds["time_years"] - pred["time_years"]  # one grid: labels line up without reindexing
    assert float(np.nanmax(np.abs(aligned.values))) == 0.0


def test_subset_filters_every_table(tiny_cohort):
    cohort = load(tiny_cohort)
    sub = cohort.subset(["p1", "p3"])
    assert sub.patient_ids == ["p1", "p3"]
    for frame in (sub.visits, sub.images, sub.events, sub.joints):
        assert set(frame["patient_id"]) <= {"p1", "p3"}
    assert len(sub.visits) == 6 and len(sub.images) == 12
    assert len(sub.landmarks) == 3  # landmarks follow their images (p1's)
    assert len(cohort.subset(["p2"]).landmarks) == 0
    assert len(cohort.visits) == 18  # the original is untouched
    with pytest.raises(KeyError, match="p42"):
        cohort.subset(["p1", "p42"])


def test_event_table_censors_patients_without_a_row(tiny_cohort):
    events = pd.read_csv(tiny_cohort / "events.csv")
    events[events.patient_id != "p4"].to_csv(tiny_cohort / "events.csv", index=False)
    cohort = load(tiny_cohort)
    table = cohort.event_table()
    assert list(table.columns) == ["patient_id", "time_years", "observed"]
    assert table["patient_id"].tolist() == ["p1", "p2", "p3", "p4", "p5", "p6"]
    p4 = table.set_index("patient_id").loc["p4"]
    last = cohort.visits[cohort.visits.patient_id == "p4"]["time_years"].max()
    assert p4["observed"] == 0 and p4["time_years"] == last
    assert len(cohort.event_table(censor_missing=False)) == 5
    assert cohort.event_table("flare", censor_missing=False).empty
    assert cohort.event_status().sum() == 2


def test_summary_is_readable(tiny_cohort):
    text = load(tiny_cohort).summary()
    for expected in ("Patients: 6", "Visits: 18", "Images: 36", "hand_left", "hand_right", "svdh_total",
                     "msasss", "67", "deformity"):
        assert expected in text, expected
    assert "\x1b[" not in text  # plain text, no terminal colour codes


def test_load_error_is_an_input_error(tiny_cohort):
    from raoutcome.errors import InputError

    (tiny_cohort / "patients.csv").unlink()
    with pytest.raises(InputError):
        load(tiny_cohort)
    with pytest.raises(CohortValidationError, match="patients"):
        load(tiny_cohort)
