"""Input hardening (issue 30), beside the bad-input corpus (tests/bad_inputs.yaml): a YAML alias bomb
is refused in milliseconds on every surface, every float setting has a finite bound, numbers of any
size reach no handler unparsed, user text is shown as text, machine paths are redacted on every
page, and a path outside the allowed folders is refused without a look at the file system."""
import dataclasses
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import time
import typing
from pathlib import Path

import gradio as gr
import pytest
from markdown_it import MarkdownIt

from engine.config import safe_yaml
from engine.config import Config, ConfigError, load_config, parse_config
from jobs import api, runs, settings
from jobs.testing import REPO, fake_config

LEVELS = 9
BOMB = "".join([f"a0: &a0 [{', '.join(['lol'] * LEVELS)}]\n"] +
               [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * LEVELS)}]\n" for i in range(1, LEVELS - 1)] +
               [f"prompts: [{', '.join([f'*a{LEVELS - 2}'] * LEVELS)}]\n"])  # 9^9 = 387,420,489 values
NAME = '![t](http://host/pixel.png) <a href="http://host/login">Log in again</a>'


# ---------------------------------------------------------------- YAML within bounds


def test_nodes_are_counted_with_aliases_expanded_before_anything_is_built():
    assert safe_yaml.check_nodes("a: &x [1, 2]\nb: *x\n") == 9  # mapping, 2 keys, the list of 3 twice
    assert safe_yaml.check_nodes("a: &x {k: [1, 2]}\nb: [*x, *x]\n") == 1 + 1 + 5 + 1 + 1 + 2 * 5
    assert safe_yaml.load("a: &x [1, 2]\nb: *x\n") == {"a": [1, 2], "b": [1, 2]}
    legit = "prompts:\n" + "".join(f"- a red circle number {i}\n" for i in range(50_000))
    assert len(safe_yaml.load(legit)["prompts"]) == 50_000  # a large plain config is no bomb


@pytest.mark.parametrize("text, message", [
    (BOMB, "YAML values (aliases expanded); at most 1,000,000 (raise the limit with G2RPO_MAX_CONFIG_NODES)"),
    ("a: &a [1, *a]\n", "the alias *a repeats a node that holds it (a cycle)"),
    ("r" * (2 * 2**20), "too large: more than 1 MB of YAML (raise the limit with G2RPO_MAX_CONFIG_MB)"),
], ids=["bomb", "cycle", "two megabytes"])
def test_a_bomb_a_cycle_and_a_huge_text_are_refused_at_once(text, message, monkeypatch):
    monkeypatch.setenv("G2RPO_MAX_CONFIG_MB", "1")
    start = time.monotonic()
    with pytest.raises(safe_yaml.YamlRefused, match=re.escape(message)):
        safe_yaml.load(text)
    assert time.monotonic() - start < 0.5


def test_the_bomb_is_refused_in_under_2_s_on_every_surface(tmp_path, monkeypatch, capsys):
    """The CLI (in-process and as `python -m jobs submit`), the engine's config load, the jobs API
    with a file and with a Python structure that shares itself the way aliases do."""
    from jobs.__main__ import main as jobs_cli

    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("G2RPO_DATABASE_URL", raising=False)
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(BOMB)
    shared = ["a red circle on a black background"] * LEVELS
    for _ in range(LEVELS - 1):
        shared = [shared] * LEVELS

    def refused(call, *args):
        start = time.monotonic()
        with pytest.raises(ConfigError) as err:
            call(*args)
        assert time.monotonic() - start < 2, call
        assert len(str(err.value)) < 1500  # each problem quoted in a line
        return str(err.value)

    assert "G2RPO_MAX_CONFIG_NODES" in refused(load_config, bomb)
    assert "G2RPO_MAX_CONFIG_NODES" in refused(api.submit, str(bomb))
    assert "prompts[0]: expected str" in refused(api.submit, {"prompts": shared})  # quoted briefly, never walked
    start = time.monotonic()
    assert jobs_cli(["submit", str(bomb)]) == 2
    assert time.monotonic() - start < 2 and "G2RPO_MAX_CONFIG_NODES" in capsys.readouterr().err
    done = subprocess.run([sys.executable, "-m", "jobs", "submit", str(bomb)], cwd=REPO, capture_output=True,
                          text=True, timeout=60, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 2 and "G2RPO_MAX_CONFIG_NODES" in done.stderr and "Traceback" not in done.stderr
    assert api.list_runs() == []


# ---------------------------------------------------------------- every float bounded


def _float_paths(cls=Config, prefix="") -> list[str]:
    """Config paths of every float setting: "algorithm.clip_range", "train.betas[1]", "rewards[0].weight"."""
    paths = []
    hints = typing.get_type_hints(cls)  # the bounds (Annotated) stripped: float, float | None, list[float]
    for f in dataclasses.fields(cls):
        path, kinds = f"{prefix}{f.name}", _kinds(hints[f.name])
        for inner in (k for k in kinds if dataclasses.is_dataclass(k)):
            paths += _float_paths(inner, f"{path}[0]." if "list" in kinds else f"{path}.")
        if "float" in kinds:
            paths.append(f"{path}[1]" if "list" in kinds else path)
    return paths


def _kinds(hint) -> set:
    """What a type hint holds: "float", "list" and the dataclasses in it (X | None and list[X] looked into)."""
    if dataclasses.is_dataclass(hint):
        return {hint}
    if hint is float:
        return {"float"}
    found = {"list"} if typing.get_origin(hint) is list else set()
    for arg in typing.get_args(hint):
        found |= _kinds(arg)
    return found


def _config_with(path: str, value: float) -> dict:
    if path == "rewards[0].weight":
        return {"rewards": [{"name": "preference", "weight": value}]}
    section, key = path.split(".")
    if key.endswith("[1]"):
        return {section: {key[:-3]: [0.9, value]}}
    return {section: {key: value}}


FLOATS = _float_paths()


def test_the_float_settings_are_all_found():
    assert {"algorithm.clip_range", "train.learning_rate", "lora.alpha", "model.guidance", "train.betas[1]",
            "rewards[0].weight", "sampling.shift"} <= set(FLOATS) and len(FLOATS) >= 16


@pytest.mark.parametrize("path", FLOATS)
@pytest.mark.parametrize("value", [1e308, -1e308])
def test_every_float_setting_has_a_finite_upper_and_a_lower_bound(path, value):
    with pytest.raises(ConfigError) as err:
        parse_config(_config_with(path, value))
    assert any(p.startswith(f"{path}: must be") for p in err.value.problems), err.value.problems


def test_a_clip_range_of_1e308_is_refused_before_anything_is_queued(store):
    with pytest.raises(ConfigError, match=r"algorithm.clip_range: must be at most 10 \(the ratio is clipped"):
        api.submit("configs/g2rpo.yaml", ["algorithm.clip_range=1e308"])
    assert api.list_runs() == []
    assert load_config("configs/g2rpo.yaml", ["algorithm.clip_range=10"])  # the tests' "no clipping" stays


# ---------------------------------------------------------------- numbers of any size


def test_numbers_are_parsed_with_overflow_handled():
    from app import numbers

    big = 10**399
    assert numbers.number(big) == big and numbers.number("12") == 12 and numbers.number(2.5) == 2.5
    assert numbers.number(1e24) == int(1e24) and numbers.number(" 3 ") == 3
    for bad in ("nan", "1e400", float("inf"), True, None, [1], "9" * 41, "x"):
        with pytest.raises(ValueError):
            numbers.number(bad)
    with pytest.raises(gr.Error, match="run ids are whole numbers from 1 to 9,223,372,036,854,775,807"):
        numbers.run_id(big)
    with pytest.raises(gr.Error, match="The seed must be a whole number in 0 .. 9, got a number of 1,326 bits"):
        numbers.whole(big, 0, 9, "The seed")
    assert numbers.run_id("7") == 7 and numbers.whole(3.0, 0, 9, "x") == 3


def test_handlers_the_page_calls_privately_take_a_number_of_400_digits(store):
    """The monitor's iteration and prompt, the smoothing, the samples slider, the selection, notes,
    the delete confirmation, the log box: a message or a default, never a bare "Error"."""
    from app import monitor, monitor_tab, notes, runs_tab, samples_grid
    from app.log_tail import log_page

    big, run_id = 10**399, runs.create(fake_config())
    view, _ = monitor.poll(None, run_id)
    assert "The iteration must be a whole number in -1 .." in monitor_tab.iteration_views(view, big, 3, -1, 1)[2]
    assert "The prompt must be a whole number" in monitor_tab.iteration_views(view, -1, 3, -big, 1)[2]
    assert monitor_tab.reward_view(view, "iteration", big) is not None
    assert samples_grid.chosen({"samples": [{"trained": 5}, {"trained": 10}]}, big, False) == 10
    assert runs_tab.selection(big)[0] == "" and notes.load(big) == ("", "")
    assert "run ids are whole numbers" in runs_tab.ask_delete(big)[1]
    assert "run ids are whole numbers" in log_page(None, True, big)
    assert "Lines must be a whole number in 1 .. 200" in log_page(None, True, run_id, big)
    with pytest.raises(gr.Error, match="run ids are whole numbers"):
        notes.save(None, True, big, "notes", "")


# ---------------------------------------------------------------- user text as text


def _rendered(markdown: str) -> str:
    return MarkdownIt("commonmark").enable("table").render(markdown)


def _inert(markdown: str) -> None:
    """No image, no link, no tag from NAME: its characters are shown as they are."""
    html = _rendered(markdown)
    assert "<img" not in html and "<a " not in html and "http://host" not in markdown, html
    assert "![t](http://host/pixel.png) &lt;a href=&quot;http://host/login&quot;&gt;Log in again&lt;/a&gt;" in html


def test_a_run_name_with_markdown_and_html_is_text_on_every_page(store):
    from app import figures, monitor, overlay_tab
    from app.envelopes import figure as envelope_figure

    run_id = runs.create(fake_config(), name=NAME)
    view, _ = monitor.poll(None, run_id)
    _inert(monitor.status_line(view))  # the Monitor's status line
    metrics = [{"iteration": i, "count": 1, "reward": 0.5, "model_evaluations": 10} for i in range(3)]
    config = {**fake_config(), "train": {**fake_config()["train"], "seed": 0}}
    shown = [{"label": f"#{run_id} {NAME}", "config": config, "metrics": metrics, "evaluations": []},
             {"label": f"#9 {NAME} seed 1", "config": {**config, "train": {**config["train"], "seed": 1}},
              "metrics": metrics, "evaluations": []}]
    _inert(overlay_tab.summary(shown, "total"))  # the Overlay's summary table
    _inert(overlay_tab.seed_summary(shown, "total"))  # ... and its seeds' table
    for fig in (figures.overlay(shown, "iteration", "total"), envelope_figure(shown, "iteration", "total")):
        names = [trace.name for trace in fig.data]  # Plotly draws <a href> in a legend as a link
        assert names and not any("<a" in name for name in names) and any("&lt;a href" in name for name in names)
    heat = {"prompts": [NAME]}
    assert "<a" not in figures._short(heat, 0, 200) and "&lt;a href" in figures._short(heat, 0, 200)


def test_text_from_configs_and_messages_is_text_too(store):
    from app import compare_tab, errors, runs_tab

    a = runs.create(fake_config())
    other = fake_config()
    other["model"]["path"] = NAME  # a config shown in Compare's table of differences
    b = runs.create(other)
    _inert(compare_tab.config_diff(a, b))
    line = errors.in_message_line(runs_tab.cancel, 0)(None, True, NAME)  # a refusal quoting its input
    assert line.startswith("⚠️ ") and "<a" not in _rendered(line)


def test_the_runs_table_shows_cells_as_plain_text(store):
    from app import runs_tab

    with gr.Blocks():
        parts = runs_tab.build(gr.State(True))
    assert not {"markdown", "html"} & set(parts["grid"].datatype)  # a name in a cell is text


# ---------------------------------------------------------------- one redaction rule


def test_the_monitor_warning_names_no_folder_of_this_machine(store):
    from app import monitor

    run_id = runs.create(fake_config())
    folder = settings.run_dir(run_id)
    runs.finish(run_id, "failed", f"checkpoint failed:\nNotADirectoryError: [Errno 20] Not a directory: "
                                  f"'{folder}/checkpoints'", expected=("queued",))
    line = monitor.status_line(monitor.poll(None, run_id)[0])
    assert str(settings.data_dir()) not in line and "NotADirectoryError" in line
    assert "\\<run\\>/checkpoints" in line  # redacted, then escaped for Markdown


def test_the_runs_tab_line_names_a_tracker_folder_redacted(store):
    from app import runs_tab

    config = fake_config()
    config["train"]["log_with"] = ["tensorboard"]
    run_id = runs.create(config)
    about = runs_tab.selection(run_id)[0]
    assert "TensorBoard: `<run>/trackers/g2rpo`" in about and str(settings.data_dir()) not in about


def test_refusals_name_no_folder_of_this_machine(store, monkeypatch):
    """A prompts file or a model folder outside the allowed folders: the page and the HTTP API say
    so without the allowed folders' absolute paths."""
    from app import errors, forms, launch_tab

    extra = settings.data_dir().parent / "deep" / "secret-models"  # shown as "…/deep/secret-models"
    monkeypatch.setenv("G2RPO_FILE_DIRS", str(extra))
    private = [str(settings.data_dir()), str(REPO), str(extra.parent.parent)]

    def clean(text: str) -> str:
        assert "is outside the folders" in text and not any(p in text for p in private), text
        return text

    check = errors.user_errors(api.check_config)
    with pytest.raises(gr.Error) as err:
        check("configs/g2rpo.yaml", ["prompts_file=/etc/passwd"])
    assert "&lt;app&gt;/prompts, &lt;data&gt;/prompts, &lt;data&gt;/models" in clean(err.value.message)  # HTML toast
    preset = next(iter(forms.PRESETS))
    values = {**forms.preset_values(preset), "model": "flux", "model_path": "/etc"}
    form = [values[k] for k in forms.KEYS]
    checks = launch_tab.validate_form(True, preset, "", *form)
    clean(checks[3 + forms.KEYS.index("model_path")]["message"])  # the launch form's message at the field
    with pytest.raises(gr.Error) as err:
        launch_tab.submit(None, True, preset, "", *form)
    clean(err.value.message)
    assert api.list_runs() == []


def test_a_training_process_killed_by_sigkill_is_named_so(store):
    from jobs import supervise

    run_id = runs.create(fake_config())
    settings.run_dir(run_id).mkdir(parents=True)
    (settings.run_dir(run_id) / "log.txt").write_text("iteration 3 done\nthe last line of the log\n")
    proc = multiprocessing.get_context("fork").Process(target=time.sleep, args=(60,))
    proc.start()
    os.kill(proc.pid, signal.SIGKILL)
    proc.join(10)
    status, error = supervise.watch(run_id, proc)
    assert (status, error) == ("failed", "training process killed by SIGKILL (out of memory, or kill -9)")
    assert supervise.signal_name(40) == "signal 40" and supervise.signal_name(signal.SIGSEGV) == "SIGSEGV"


# ---------------------------------------------------------------- no existence oracle


def test_a_path_outside_the_folders_is_refused_before_any_look_at_the_file_system(tmp_path, monkeypatch):
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    existing = tmp_path / "present" / "model"
    existing.mkdir(parents=True)
    (existing / "model_index.json").write_text("{}")
    (existing / "config.json").write_text("{}")
    monkeypatch.chdir(tmp_path)  # "present/model" is also a folder relative to the working directory
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    looked: list[str] = []
    for name in ("stat", "lstat"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda path, *a, real=real, **k: (looked.append(str(path)), real(path, *a, **k))[1])

    def problems(override: str) -> list[str]:
        with pytest.raises(ConfigError) as err:
            load_config(None, ["model.name=flux", override], read_from=[allowed])
        return [p.replace(str(existing), "P").replace(str(tmp_path / "missing" / "model"), "P").replace("missing/model", "P")
                .replace("present/model", "P") for p in err.value.problems]

    never = [tmp_path / "present", tmp_path / "missing"]
    for there, missing in ((f"model.path={existing}", f"model.path={tmp_path / 'missing' / 'model'}"),
                           ("model.path=present/model", "model.path=missing/model"),  # hub ids, by their text
                           ("rewards=[{name: clip_score, model: present/model}]",
                            "rewards=[{name: clip_score, model: missing/model}]"),
                           (f"rewards=[{{name: clip_score, model: {existing}}}]",
                            f"rewards=[{{name: clip_score, model: {tmp_path / 'missing' / 'model'}}}]")):
        looked.clear()
        assert problems(there) == problems(missing) != []
        assert not [p for p in looked for folder in never if Path(os.path.abspath(p)).is_relative_to(folder)], looked
    assert "is outside the folders" in problems(f"model.path={existing}")[0]
    assert "not in the local Hugging Face cache" in problems("model.path=present/model")[0]
