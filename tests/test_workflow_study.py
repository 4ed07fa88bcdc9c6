"""The study pipeline: stage skipping / --force / resume, the run record, the report's sections, the CLI.

Most tests replace the heavy stages (simulate, train, analyze, attribute) with small fakes that write the
same kind of files, so they run in seconds and check the orchestration itself. The real pipeline on a tiny
configuration runs in ``test_real_pipeline_tiny`` (slow marker).
"""
from __future__ import annotations

import base64
import json
import re
import sys
import types
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from conftest import write_tiny_cohort
from raoutcome.errors import ConfigError
from raoutcome.workflows import study
from raoutcome.workflows.stages import DONE, RUN_RECORD, Stage, StageRunner

REPO = Path(__file__).resolve().parents[1]
# A 1x1 white PNG, enough for a figure.
PNG = base64.b64decode(
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8/5+hHgAHggJ/PchI7wAAAABJRU5ErkJggg==")


# ------------------------------------------------------------------------------------------------- fakes
class Calls(dict):
    def hit(self, name: str) -> None:
        self[name] = self.get(name, 0) + 1


def _stand_in(monkeypatch, name: str, **functions) -> None:
    """Register a stand-in module ``name`` holding ``functions`` for this test (the real one is not imported:
    the fakes keep these tests fast and independent of the heavy stages)."""
    mod = types.ModuleType(name)
    for key, fn in functions.items():
        setattr(mod, key, fn)
    monkeypatch.setitem(sys.modules, name, mod)


# The simulator's oracle.json layout (raoutcome.synth.oracle).
ORACLE = {"null": False, "haq": {"r2_noise_free": 0.62, "r2_svdh": 0.3}, "pain": {"r2_noise_free": 0.55},
          "deformity": {"c_index_oracle": 0.81, "n_events": 3}}


def _analysis_files(out: Path) -> None:
    """The tables and figures raoutcome.workflows.analyze writes (same names and columns, made-up values)."""
    ci = dict(ci_method="patient bootstrap", note="")
    pd.DataFrame([
        dict(head="svdh", outcome="svdh_total", metric="pearson_r", estimate=0.9, ci_low=0.85, ci_high=0.95, n=24, **ci),
        dict(head="svdh", outcome="svdh_total", metric="dream_weighted_rmse", estimate=0.52, ci_low=0.4, ci_high=0.6,
             n=24, **ci),
        dict(head="haq", outcome="haq", metric="pearson_r", estimate=0.6, ci_low=0.5, ci_high=0.7, n=24, **ci),
        dict(head="risk", outcome="deformity", metric="harrell_c", estimate=0.74, ci_low=0.6, ci_high=0.85, n=8, **ci),
    ]).to_csv(out / "metrics.csv", index=False)
    pd.DataFrame({"group": ["low", "middle", "high"], "n": [3, 3, 2], "events": [0, 1, 2], "score_min": [0, 1, 2],
                  "score_max": [1, 2, 3], "median_survival": [np.inf, np.inf, 1.5], "logrank_statistic": 4.1,
                  "logrank_df": 2, "logrank_p": 0.128}).to_csv(out / "km_groups.csv", index=False)
    pd.DataFrame({"covariate": ["svdh_total", "svdh_total", "pred_risk"], "coef": [0.1, 0.05, 0.7], "se": 0.1,
                  "hr": [1.4, 1.2, 2.1], "hr_lower": [1.0, 0.9, 1.3], "hr_upper": [1.9, 1.6, 3.4], "z": 1.0,
                  "p": [0.04, 0.2, 0.002], "per": "SD", "model": ["SvdH + covariates", "image + SvdH + covariates",
                                                                  "image + SvdH + covariates"],
                  "n": 8, "events": 3}).to_csv(out / "cox_hazard_ratios.csv", index=False)
    pd.DataFrame({"test": ["cox_lrt", "delta_c"], "outcome": "deformity", "base": "log1p_svdh_total,age",
                  "added": "pred_risk", "estimate": [9.3, 0.061], "statistic": [9.3, np.nan], "df": [1, np.nan],
                  "p_value": [0.0023, np.nan], "n": 8, "ci_lower": [np.nan, 0.012], "ci_upper": [np.nan, 0.11]}
                 ).to_csv(out / "incremental.csv", index=False)
    pd.DataFrame({"term": ["Intercept", "svdh_total"], "estimate": [0.4, 0.2], "se": 0.05, "z": 4.0, "p": [0.1, 1e-4],
                  "ci_lower": [0.3, 0.1], "ci_upper": [0.5, 0.3], "model": "mixed", "outcome": "haq", "n_obs": 24,
                  "n_patients": 8, "predictors": "SvdH"}).to_csv(out / "mixed_models.csv", index=False)
    pd.DataFrame({"endpoint": ["SvdH change (observed)", "learned progression score"], "n": 8, "mean_change": [3.0, 2.0],
                  "sd_change": [5.0, 2.0], "srm": [0.6, 1.0], "sdc": np.nan, "pct_progressors_sdc": np.nan,
                  "pct_change_gt0": [75.0, 80.0], "n_per_arm": [114, 40], "relative_efficiency": [1.0, 2.8]}
                 ).to_csv(out / "endpoints.csv", index=False)
    pd.DataFrame({"patient_id": ["p1"], "change": [1.0]}).to_csv(out / "change_scores.csv", index=False)
    for name in ("km_tertiles", "power_curves", "cumulative_probability", "scatter_svdh", "scatter_haq", "cox_forest",
                 "mixed_coefficients", "strange_new_plot"):
        (out / f"{name}.png").write_bytes(PNG)
    (out / "summary.json").write_text(json.dumps({"files": {"strange_new_plot.png": "a new kind of plot"},
                                                  "notes": ["endpoints: no retest.csv, SDC left empty"]}))


@pytest.fixture
def fakes(monkeypatch):
    calls = Calls()
    fail = {}

    def simulate(config, out, seed=None, image_format=None):
        calls.hit("simulate")
        out = Path(out)
        write_tiny_cohort(out, n_patients=8, n_visits=3, size=48)
        (out / "truth").mkdir(exist_ok=True)
        (out / "truth" / "oracle.json").write_text(json.dumps(ORACLE))
        visits = pd.read_csv(out / "visits.csv")  # true scores: the recorded ones, one off by a point
        visits.loc[0, "svdh_total"] += 1
        visits.to_csv(out / "truth" / "visits.csv", index=False)
        return out

    def train_run(cohort, config_path, out_dir):
        calls.hit("train")
        if fail.get("train"):
            raise KeyboardInterrupt("killed mid-training")
        from raoutcome.predictions import from_frame, save_predictions

        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "fold_0").mkdir(exist_ok=True)
        (out_dir / "fold_0" / "checkpoint.pt").write_bytes(b"ckpt")
        v = cohort.visits
        frame = pd.DataFrame({"patient_id": v["patient_id"], "visit_id": v["visit_id"],
                              "time_years": v["time_years"], "svdh": v["svdh_total"] + 1.0,
                              "haq": v["haq"] + 0.25, "pain": v["pain"], "risk": np.arange(len(v), dtype=float)})
        pids = sorted(v["patient_id"].unique())
        ds = from_frame(frame, embedding=np.ones((len(v), 4)), folds={p: i % 2 for i, p in enumerate(pids)})
        save_predictions(ds, out_dir / "cv_predictions.nc")
        return out_dir

    def analyze(cohort, predictions_path, out_dir):
        calls.hit("analyze")
        if fail.get("analyze"):
            raise RuntimeError("analysis crashed")
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        _analysis_files(out)
        return out

    def attribute(run_dir, cohort, out_dir, method="integrated_gradients", max_images=64):
        calls.hit("attribute")
        out = Path(out_dir)
        (out / "overlays").mkdir(parents=True, exist_ok=True)
        (out / "overlays" / "images__p1__p1_v0_hand_left.png").write_bytes(PNG)
        rows = [dict(head=h, region=r, relative_density=d, ratio_to_svdh_site=q, ci_low=q * 0.8, ci_high=q * 1.2,
                     mass_outside_svdh=0.7, area_outside_svdh=0.9)
                for h in ("svdh", "haq") for r, d, q in (("svdh_site", 3.0, 1.0), ("periarticular", 4.0, 1.3))]
        pd.DataFrame(rows).to_csv(out / "summary.csv", index=False)
        (out / "attribution.json").write_text(json.dumps({"method": method, "n_images": 1,
                                                          "region_sources": {"truth": 1}}))
        return out

    _stand_in(monkeypatch, "raoutcome.synth", simulate=simulate)
    _stand_in(monkeypatch, "raoutcome.training", train_run=train_run)
    _stand_in(monkeypatch, "raoutcome.workflows.analyze", analyze=analyze)
    _stand_in(monkeypatch, "raoutcome.workflows.attribute", attribute=attribute)
    return types.SimpleNamespace(calls=calls, fail=fail)


@pytest.fixture
def configs(tmp_path):
    sim = tmp_path / "sim.toml"
    sim.write_text("seed = 11\nn_patients = 8\n")
    train = tmp_path / "train.toml"
    train.write_text("[train]\nseed = 5\nfolds = 2\n")
    return sim, train


def _demo(out, configs, **kw):
    sim, train = configs
    return study.run_demo(out, sim_config=sim, train_config=train, **kw)


def _statuses(out: Path) -> dict[str, str]:
    record = json.loads((out / RUN_RECORD).read_text())
    return {s["name"]: s["status"] for s in record["stages"]}


# ------------------------------------------------------------------------------------------------- tests
def test_demo_report_has_every_section_and_is_self_contained(tmp_path, fakes, configs):
    report = _demo(tmp_path / "out", configs)
    assert report == tmp_path / "out" / "report.html"
    html = report.read_text()
    ids = set(re.findall(r'<section id="([^"]+)"', html))
    assert {"overview", "cohort", "examples", "accuracy", "dream", "survival", "beyond", "longitudinal",
            "endpoints", "anomaly", "attribution", "truth", "methods"} <= ids
    # a figure no section uses is still shown, under "Other analyses", with the analysis' description
    assert "other" in ids and "a new kind of plot" in html
    assert "change_scores" not in html  # per-patient listings stay in the folder
    # figures embedded; nothing fetched from elsewhere
    # overview, examples, 2 scatters, KM, mixed, cumulative, power, the unknown plot, density ratio, overlay
    assert html.count("data:image/png;base64,") == 11
    assert not re.search(r'(src|href)="(https?:)?//', html)
    assert not re.search(r'src="(?!data:)', html)

    def section(sid):
        return html.split(f'<section id="{sid}"')[1].split("</section>")[0]

    # accuracy next to the simulator's ceilings: oracle R² / C-index, and r(true SvdH, recorded SvdH)
    acc = pd.read_csv(tmp_path / "out" / "analyze" / "accuracy_vs_ceiling.csv").set_index(["head", "metric"])
    assert acc.loc[("risk", "Harrell C-index"), "best_achievable"] == 0.81
    assert acc.loc[("haq", "R²"), "best_achievable"] == 0.62
    assert acc.loc[("svdh", "Pearson r"), "estimate"] == 0.9
    assert 0.99 < acc.loc[("svdh", "Pearson r"), "best_achievable"] <= 1.0  # fake truth = recorded + 0/1 noise
    # R² of the fake HAQ predictions (= recorded HAQ + 0.25) computed independently
    v = pd.read_csv(tmp_path / "out" / "simulate" / "cohort" / "visits.csv").dropna(subset=["haq"])
    expected_r2 = 1 - (0.25 ** 2 * len(v)) / ((v["haq"] - v["haq"].mean()) ** 2).sum()
    assert acc.loc[("haq", "R²"), "estimate"] == pytest.approx(expected_r2)
    assert "best achievable" in section("accuracy") and "0.810" in section("accuracy")
    assert "0.520 (0.400 to 0.600)" in section("dream")
    assert "p = 0.128" in section("survival")
    beyond = section("beyond")
    assert "SvdH + covariates: HR (95 % CI)" in beyond and "image + SvdH + covariates: HR (95 % CI)" in beyond
    assert "2.10 (1.30 to 3.40)" in beyond and "0.002" in beyond and "0.061 (0.012 to 0.110)" in beyond
    # the fake analysis answered only the first question: the report says so in plain words
    assert "Question 1" in beyond and "Only question 1 could be answered" in beyond
    assert "Periarticular" in section("attribution") or "periarticular" in section("attribution")
    assert "SDC left empty" in section("methods")
    # the tiny cohort locates joints in one image only: the anomaly section says why it is empty
    assert "No joint anomaly score was computed" in section("anomaly") and "landmarks" in section("anomaly")
    assert "Patient p" in html  # the example radiographs name the patient
    assert "out-of-fold" in html
    for stage in ("simulate", "validate", "train", "predict", "analyze", "attribute", "report"):
        done = json.loads((tmp_path / "out" / stage / DONE).read_text())
        assert done["stage"] == stage and done["seconds"] >= 0
        for key in done["path_outputs"]:
            assert (tmp_path / "out" / done["outputs"][key]).exists()


def test_report_shows_readable_names_and_paths_relative_to_its_folder(tmp_path, fakes, configs):
    """Readers see labels, not column names; paths are relative to the report; AUC horizons are rounded."""
    out = tmp_path / "out"
    _demo(out, configs)
    analysis = out / "analyze" / "analysis"
    metrics = pd.read_csv(analysis / "metrics.csv")
    extra = metrics[metrics["metric"] == "harrell_c"].assign(metric="auc_t1.4712")
    pd.concat([metrics, extra]).to_csv(analysis / "metrics.csv", index=False)
    pd.DataFrame({"covariate": ["pred_risk", "sex_m", "svdh_total"], "statistic": [1.1, 0.3, 0.2],
                  "p": [0.3, 0.6, 0.7], "time_transform": "rank"}).to_csv(analysis / "cox_ph_test.csv", index=False)
    overlays = out / "attribute" / "attribution" / "overlays"
    for i in range(4):
        (overlays / f"extra_{i}.png").write_bytes(PNG)
    (out / "report" / DONE).unlink()  # the report alone is written again, from the files above
    html = _demo(out, configs).read_text()
    text = re.sub(r"<[^>]+>", " ", re.sub(r'src="data:[^"]*"', "", html))

    def section(sid):
        return re.sub(r"<[^>]+>", " ", html.split(f'<section id="{sid}"')[1].split("</section>")[0])

    assert str(tmp_path) not in text and str(out.resolve()) not in text
    assert "2 more overlays are in attribute/attribution/overlays" in section("attribution")
    assert "study folder: the folder of this report" in text
    beyond = section("beyond")
    for raw in ("pred_risk", "svdh_total", "sex_m", "log1p_"):
        assert raw not in beyond, raw
    assert "image risk score" in beyond and "SvdH total" in beyond and "male sex" in beyond
    assert "log(SvdH total + 1), age (years)" in beyond
    assert "term" in section("longitudinal") and "svdh_total" not in section("longitudinal")
    truth = section("truth")
    assert "_of_mean" not in truth and "simulate/cohort/truth/oracle.json" in truth
    assert "AUC at 1.5 years" in section("accuracy") and "1.4712" not in section("accuracy")


def test_time_grid_rounds_auc_horizons_to_readable_times():
    from raoutcome.workflows.analyze import _time_grid

    time = np.linspace(0.2, 3.9, 200)  # event-time quartiles 1.13, 2.05, 2.98 (all events)
    assert _time_grid(pd.Series(time), pd.Series(np.ones(200, int))).tolist() == [1.0, 2.0, 3.0]
    time = np.linspace(0.1, 1.0, 200)  # quartiles 0.33, 0.55, 0.78: half years would merge two of them
    assert _time_grid(pd.Series(time), pd.Series(np.ones(200, int))).tolist() == [0.25, 0.5, 0.75]
    # short follow-up: half and quarter years would merge the quartiles, two significant digits keep them
    time = np.linspace(0.01, 0.2, 40)
    grid = _time_grid(pd.Series(time), pd.Series(np.ones(40, int)))
    assert len(grid) == 3 and all(float(f"{g:.2g}") == g for g in grid)


def test_rerun_skips_finished_stages_and_force_reruns_them(tmp_path, fakes, configs):
    out = tmp_path / "out"
    _demo(out, configs)
    assert fakes.calls == {"simulate": 1, "train": 1, "analyze": 1, "attribute": 1}
    first = (out / "report.html").stat().st_mtime_ns
    _demo(out, configs)
    assert fakes.calls == {"simulate": 1, "train": 1, "analyze": 1, "attribute": 1}
    assert set(_statuses(out).values()) == {"skipped"}
    assert (out / "report.html").stat().st_mtime_ns == first
    _demo(out, configs, force=True)
    assert fakes.calls == {"simulate": 2, "train": 2, "analyze": 2, "attribute": 2}
    assert set(_statuses(out).values()) == {"ran"}


def test_interrupted_run_resumes_at_the_failed_stage(tmp_path, fakes, configs):
    out = tmp_path / "out"
    fakes.fail["train"] = True
    with pytest.raises(KeyboardInterrupt):
        _demo(out, configs)
    assert (out / "simulate" / DONE).exists() and not (out / "train" / DONE).exists()
    (out / "train" / "run").mkdir(parents=True, exist_ok=True)
    (out / "train" / "run" / "partial_checkpoint").write_text("epoch 3")
    fakes.fail["train"] = False
    _demo(out, configs)
    assert fakes.calls["simulate"] == 1 and fakes.calls["train"] == 2
    # the interrupted stage's folder was kept for the trainer to resume from
    assert (out / "train" / "run" / "partial_checkpoint").exists()
    assert _statuses(out)["simulate"] == "skipped" and _statuses(out)["train"] == "ran"
    # a later failure leaves earlier stages done; only the failed one runs again
    fakes.fail["analyze"] = True
    with pytest.raises(RuntimeError):
        _demo(out, configs, force=True)
    fakes.fail["analyze"] = False
    before = dict(fakes.calls)
    _demo(out, configs)
    assert fakes.calls["train"] == before["train"] and fakes.calls["analyze"] == before["analyze"] + 1


def test_changed_training_config_reruns_training_and_everything_after(tmp_path, fakes, configs):
    out = tmp_path / "out"
    _demo(out, configs)
    sim, train = configs
    (out / "train" / "run" / "stale_marker").write_text("from the old config")
    train.write_text("[train]\nseed = 6\nfolds = 2\n")
    _demo(out, configs)
    status = _statuses(out)
    assert status["simulate"] == "skipped" and status["validate"] == "skipped"
    assert all(status[s] == "ran" for s in ("train", "predict", "analyze", "attribute", "report"))
    assert not (out / "train" / "run" / "stale_marker").exists()  # finished under other inputs: wiped


def test_run_record_contents(tmp_path, fakes, configs):
    out = tmp_path / "out"
    _demo(out, configs)
    record = json.loads((out / RUN_RECORD).read_text())
    assert record["command"] == "demo"
    assert record["configs"]["simulate"]["values"]["n_patients"] == 8
    assert record["configs"]["train"]["values"]["train"]["folds"] == 2
    assert record["seeds"]["simulate.seed"] == 11 and record["seeds"]["train.train.seed"] == 5
    assert {"numpy", "pandas", "raoutcome", "python"} <= set(record["packages"])
    hw = record["hardware"]
    assert hw["cpu_count"] >= 1 and "torch_threads" in hw and "gpu" in hw
    assert [s["name"] for s in record["stages"]] == ["simulate", "validate", "train", "predict", "anomaly",
                                                      "analyze", "attribute", "report"]
    assert all(s["seconds"] >= 0 and s["finished"] for s in record["stages"])
    assert record["stages"][3]["outputs"]["cross_fitted"] is True
    assert record["stages"][3]["outputs"]["n_folds"] == 2


def test_run_study_on_own_cohort_has_no_truth(tmp_path, fakes, configs):
    cohort = write_tiny_cohort(tmp_path / "mine", n_patients=6, n_visits=3, size=40)
    _, train = configs
    cfg = tmp_path / "study.toml"
    cfg.write_text(f'[study]\ntitle = "My RA cohort"\nseed = 3\n[train]\nconfig = "{train.name}"\n'
                   '[attribution]\nenabled = false\n')
    report = study.run_study(cohort, cfg, tmp_path / "out")
    html = report.read_text()
    assert "My RA cohort" in html and 'id="truth"' not in html and "Synthetic demonstration" not in html
    assert "switched off" in html
    assert "simulate" not in fakes.calls and "attribute" not in fakes.calls
    record = json.loads((tmp_path / "out" / RUN_RECORD).read_text())
    assert record["command"] == "study" and record["seeds"]["study.seed"] == 3


@pytest.mark.parametrize("text, needle", [
    ('[study]\ntitle = "x"\n', "train.config"),
    ('[train]\nconfig = "nope.toml"\n', "nope.toml"),
    ('[train]\nconfig = "TRAIN"\n[attribution]\nmethod = "lime"\n', "attribution.method"),
    ('[train]\nconfig = "TRAIN"\n[attribution]\nmax_images = 0\n', "attribution.max_images"),
    ('[train]\nconfig = "TRAIN"\nepochs = 3\n', "epochs"),
    ('[train]\nconfig = "TRAIN"\n[report]\nexample_views = ["hand_middle"]\n', "report.example_views"),
    ('[train]\nconfig = "TRAIN"\n[study]\nseed = "zero"\n', "study.seed"),
    ('[train\nconfig=', "not valid TOML"),
])
def test_bad_study_config_names_the_key(tmp_path, configs, text, needle):
    cfg = tmp_path / "study.toml"
    cfg.write_text(text.replace("TRAIN", configs[1].name))
    with pytest.raises(ConfigError, match=re.escape(needle)):
        study.load_study_config(cfg)


def test_study_example_config_is_valid():
    settings = study.load_study_config(REPO / "cohorts" / "study_example.toml")
    assert settings.train_config.is_file() and settings.attribution_method in study.ATTRIBUTION_METHODS


def test_cli_study_bad_input_exits_2_and_writes_nothing(tmp_path, configs):
    from raoutcome.cli import app

    runner = CliRunner()
    out = tmp_path / "out"
    res = runner.invoke(app, ["study", "--cohort", str(tmp_path / "missing"), "--config", str(configs[1]),
                              "--out", str(out)])
    assert res.exit_code == 2 and "not found" in res.output
    cfg = tmp_path / "study.toml"
    cfg.write_text("[train]\nconfig = 'absent.toml'\n")
    cohort = write_tiny_cohort(tmp_path / "c", n_patients=4, n_visits=2, size=32)
    res = runner.invoke(app, ["study", "--cohort", str(cohort), "--config", str(cfg), "--out", str(out)])
    assert res.exit_code == 2 and "absent.toml" in res.output
    # an invalid cohort: every problem listed, exit 2, nothing written
    cfg.write_text(f"[train]\nconfig = '{configs[1]}'\n")
    visits = pd.read_csv(cohort / "visits.csv")
    visits.loc[2, "haq"] = 7.5
    visits.to_csv(cohort / "visits.csv", index=False)
    res = runner.invoke(app, ["study", "--cohort", str(cohort), "--config", str(cfg), "--out", str(out)])
    assert res.exit_code == 2 and "visits.csv" in res.output and "haq" in res.output and "7.5" in res.output
    assert not out.exists()


def test_cli_demo_calls_run_demo(tmp_path, fakes, configs, monkeypatch):
    from raoutcome.cli import app

    sim, train = configs
    monkeypatch.setattr(study, "demo_config_paths", lambda: (sim, train))
    res = CliRunner().invoke(app, ["demo", "--out", str(tmp_path / "d"), "--test-patients", "0"])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "d" / "report.html").exists()


def test_stage_runner_rejects_unknown_dependency(tmp_path):
    with pytest.raises(ValueError, match="needs"):
        StageRunner(tmp_path, [Stage("b", lambda ctx: {}, needs=("a",)), Stage("a", lambda ctx: {})])


def test_stage_runner_reruns_when_an_output_disappears(tmp_path):
    hits = []

    def make(ctx):
        hits.append(1)
        (ctx.stage_dir / "x.txt").write_text("x")
        return {"x": ctx.stage_dir / "x.txt", "n": 3}

    stages = [Stage("a", make)]
    StageRunner(tmp_path, stages).run()
    StageRunner(tmp_path, stages).run()
    assert len(hits) == 1
    (tmp_path / "a" / "x.txt").unlink()
    res = StageRunner(tmp_path, stages).run()
    assert len(hits) == 2 and res["a"].outputs == {"x": "a/x.txt", "n": 3}


def test_packaged_demo_configs_match_the_repository():
    """`raoutcome demo` from an installed package uses raoutcome/data/*.toml: keep them equal to cohorts/."""
    data = REPO / "src" / "raoutcome" / "data"
    for name in ("demo.toml", "train_demo.toml", "train_image.toml"):
        src = REPO / "cohorts" / name
        if not src.exists():
            pytest.skip(f"cohorts/{name} not written yet")
        assert (data / name).read_bytes() == src.read_bytes(), (
            f"src/raoutcome/data/{name} differs from cohorts/{name}: copy it over (cp cohorts/{name} {data / name})")


# ------------------------------------------------------------------------------- the real pipeline, small
@pytest.mark.slow
def test_real_small_study_resumes_after_a_kill_and_reports(tmp_path, small_study):
    """Real simulate -> validate -> train -> predict on the shrunken demo config. A second run is killed
    (SIGKILL) during the second cross-fitting fold and run again: it resumes and ends with the same
    out-of-fold predictions as the uninterrupted run. Then analyze + attribute + report on the same folder."""
    import os
    import signal
    import subprocess
    import time

    import torch
    import xarray as xr

    from raoutcome.predictions import load_predictions

    full = small_study  # the same configuration, run without interruption

    out = tmp_path / "resumed"
    # Same intra-op thread count as this process (other test modules set it at import): float reductions
    # are only bit-reproducible at equal thread counts.
    script = (f"import sys, torch; torch.set_num_threads({torch.get_num_threads()}); "
              "from raoutcome.workflows.study import example_study; example_study(sys.argv[1])")
    proc = subprocess.Popen([sys.executable, "-c", script, str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = out / "train" / "run" / "fold_1" / "checkpoint.pt"
    deadline = time.monotonic() + 900
    while not checkpoint.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    assert checkpoint.exists(), "the run ended or timed out before the second fold's first checkpoint"
    assert not (out / "train" / DONE).exists() and (out / "simulate" / DONE).exists()

    resumed = study.example_study(out)
    status = _statuses(out)
    assert status["simulate"] == "skipped" and status["validate"] == "skipped" and status["train"] == "ran"
    a, b = load_predictions(full["predictions"]), load_predictions(resumed["predictions"])
    assert a.attrs["cross_fitted"] == 1 and (a["fold"].values >= 0).all()
    for name in ("svdh", "haq", "pain", "risk", "embedding", "fold"):
        np.testing.assert_array_equal(a[name].values, b[name].values, err_msg=name)

    # the rest of the demo on the same folder: the four finished stages are skipped
    out = tmp_path / "resumed"
    report = study.run_demo(out, sim_config=out / "configs" / "sim.toml", train_config=out / "configs" / "train.toml",
                            max_images=4)
    status = _statuses(out)
    assert [status[s] for s in ("simulate", "validate", "train", "predict")] == ["skipped"] * 4
    html = report.read_text()
    for sid in ("accuracy", "dream", "survival", "beyond", "endpoints", "attribution", "truth"):
        body = html.split(f'<section id="{sid}"')[1].split("</section>")[0]
        assert 'class="warning"' not in body, f"section {sid} is empty"
    methods = html.split('<section id="methods"')[1].split("</section>")[0]
    assert "refitted its haq, pain" in methods and "in closed form" in methods  # the readouts are reported
    acc = pd.read_csv(out / "analyze" / "accuracy_vs_ceiling.csv")
    assert {"svdh", "haq", "risk"} <= set(acc["head"])
    oracle = json.loads((out / "simulate" / "cohort" / "truth" / "oracle.json").read_text())
    c_row = acc[acc["metric"] == "Harrell C-index"].iloc[0]
    assert c_row["best_achievable"] == pytest.approx(oracle["deformity"]["c_index_oracle"])
    with xr.open_dataset(out / "attribute" / "attribution" / "maps.nc", engine="h5netcdf") as maps:
        assert maps.sizes["image"] == 4


def test_study_config_landmarks_detect(tmp_path):
    train = tmp_path / "train.toml"
    train.write_text("")
    cfg = tmp_path / "study.toml"
    cfg.write_text('[study]\nlandmarks = "detect"\n[train]\nconfig = "train.toml"\n')
    assert study.load_study_config(cfg).landmarks == "detect"
    cfg.write_text('[study]\nlandmarks = "guess"\n[train]\nconfig = "train.toml"\n')
    with pytest.raises(ConfigError, match="study.landmarks"):
        study.load_study_config(cfg)
    cfg.write_text('[study]\nlandmarks = "detect"\nlandmark_detector = "no.safetensors"\n[train]\nconfig = "train.toml"\n')
    with pytest.raises(ConfigError, match="landmark_detector"):
        study.load_study_config(cfg)


def test_run_study_detects_landmarks_when_asked(tmp_path, fakes, configs, monkeypatch):
    """`landmarks = "detect"`: the validate stage writes the detected table and later stages see it."""
    import torch

    from raoutcome.models.landmarks import DetectorSpec, LandmarkNet, save_detector

    torch.manual_seed(0)
    det = save_detector(LandmarkNet(DetectorSpec(backbone="mobilenetv3_small_050", size=64, out_indices=(1, 2, 3),
                                                 decoder=8)), tmp_path / "tiny.safetensors")
    cohort = write_tiny_cohort(tmp_path / "mine", n_patients=6, n_visits=3, size=40)
    (cohort / "landmarks.csv").unlink()
    _, train = configs
    cfg = tmp_path / "study.toml"
    cfg.write_text(f'[study]\nlandmarks = "detect"\nlandmark_detector = "{det}"\n[train]\nconfig = "{train.name}"\n'
                   '[attribution]\nenabled = false\n')
    seen = {}
    training = sys.modules["raoutcome.training"]  # the stand-in the `fakes` fixture installed
    original = training.train_run

    def spy(cohort_obj, config_path, out_dir):
        seen["landmarks"] = cohort_obj.landmarks
        return original(cohort_obj, config_path, out_dir)

    monkeypatch.setattr(training, "train_run", spy)
    study.run_study(cohort, cfg, tmp_path / "out")
    table = pd.read_csv(tmp_path / "out" / "validate" / "landmarks.csv")
    images = pd.read_csv(cohort / "images.csv")
    assert set(table.path) == set(images.path)
    assert {"confidence", "qc"} <= set(table.columns)
    assert seen["landmarks"] is not None and len(seen["landmarks"]) == len(table)
