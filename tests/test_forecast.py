"""The time forecast: a range from this machine's idle rate (slowed iterations do not drag it), the
load on its upper end only, startup and held-out evaluations counted, stored with the submitted run;
FLUX/SD3.5 previews compare with a GPU's memory and refuse a machine whose workers have no GPU."""
import pytest

from app import cost, forms
from engine.config import load_config
from jobs import api, forecast, heartbeat, runs
from jobs.sink import RunSink
from jobs.testing import fake_config, fake_record


def _run_with_iteration_seconds(seconds: list[float]) -> int:
    run_id = runs.create(fake_config(iterations=len(seconds)))
    sink = RunSink(run_id)
    sink.begin(0)
    for it, spent in enumerate(seconds):
        record = fake_record(it, k=2, lambdas=2, group=3)
        record["time"]["total"] = spent
        sink.write(record)
    return run_id


def test_the_idle_rate_is_a_low_quantile_so_a_busy_spell_does_not_drag_it(store):
    run_id = _run_with_iteration_seconds([1.0] * 16 + [4.0] * 4)  # four iterations slowed by other work
    evaluations = api.latest_metrics(run_id)[0]["model_evaluations"]
    rate = forecast.measured_rate("builtin", "g2rpo")
    assert rate["seconds_per_evaluation"] == pytest.approx(1.0 / evaluations)
    mean = api.queries.measured_rate("builtin", "g2rpo")["seconds_per_evaluation"]
    assert mean == pytest.approx(1.6 / evaluations)  # what the plain mean would have said


def test_the_range_counts_startup_and_evaluations_and_widens_its_top_with_the_load(store, monkeypatch):
    cfg = load_config("configs/g2rpo.yaml")
    monkeypatch.setattr(forecast.os, "getloadavg", lambda: (0.1, 0.1, 0.1))
    idle = forecast.forecast(cfg)
    per_eval, iterations = idle["seconds_per_evaluation"], cfg.train.iterations
    body = per_eval * idle["evaluations_per_iteration"] * iterations
    assert idle["low_s"] == pytest.approx(forecast.STARTUP_S["builtin"] + forecast.LOW * body)
    assert idle["high_s"] == pytest.approx(forecast.STARTUP_S["builtin"] + forecast.HIGH * body)
    assert idle["rollout"] > 2896  # the preset's rollout plus its samples and held-out evaluations per iteration
    monkeypatch.setattr(forecast.os, "getloadavg", lambda: (4.0, 4.0, 4.0))
    monkeypatch.setattr(forecast.os, "cpu_count", lambda: 2)
    busy = forecast.forecast(cfg)
    assert busy["low_s"] == idle["low_s"] and busy["load_factor"] == 2.0
    assert busy["high_s"] == pytest.approx(forecast.STARTUP_S["builtin"] + forecast.HIGH * body * 2)
    run_id = api.submit("configs/g2rpo.yaml")
    assert api.get_run(run_id)["estimate"]["low_s"] == pytest.approx(busy["low_s"])


def test_a_flux_preview_needs_a_gpu_worker_and_compares_with_gpu_memory(store, monkeypatch):
    preset = next(p for p in forms.PRESETS if "FLUX" in p)
    values = forms.preset_values(preset)
    line = cost.preview(preset, values)
    assert "of GPU memory (no live worker reports a GPU)" in line and "Not launchable" not in line
    heartbeat.beat("cpu-worker", device="cpu")
    line = cost.preview(preset, values)
    assert line.startswith("⚠️ Not launchable here: flux needs a GPU and no live worker has one")
    monkeypatch.setenv(cost.ALLOW_CPU_ENV, "1")
    assert "Not launchable" not in cost.preview(preset, values)
    monkeypatch.delenv(cost.ALLOW_CPU_ENV)
    heartbeat.beat("gpu-worker", device="NVIDIA H100 x1", gpu_memory=80 * 10**9)
    line = cost.preview(preset, values)
    assert "Not launchable" not in line and "of the worker's 80 GB GPU" in line


def test_the_runs_row_sets_the_prediction_beside_the_duration(store):
    from app import runs_table

    run_id = api.submit("configs/g2rpo.yaml", ["train.iterations=20"])
    row = dict(zip(runs_table.COLUMNS, next(r for r in runs_table.table() if r[0] == run_id)))
    predicted = api.get_run(run_id)["estimate"]
    assert row["predicted (min)"] == f"{predicted['low_s'] / 60:.1f}–{predicted['high_s'] / 60:.1f}"
    assert len(runs_table.COLUMNS) == len(runs_table.DATATYPES) == len(row)
    assert runs_table.predicted(None) == ""  # a run from before forecasts were kept
