"""Launch: pick a preset, tune what matters, queue the run.

Every field is checked by the CLI's rules before anything is stored; a problem shows under its
field and nothing is queued.
"""
from __future__ import annotations

import gradio as gr

from app import auth, cost, forms, saved_presets, submit_api
from app.errors import one_line, page_error, page_text, user_errors
from app.monitor import NO_WORKER
from app.redact import redact
from engine.config import ALGORITHMS, ConfigError, parse_config
from engine.models import model_names


def _component(f: forms.Field, value, algorithm: str):
    common = dict(label=f.label, info=f.info or None, elem_id=f"field-{f.key}",
                  interactive=forms.applies(f.key, algorithm))
    if f.kind == "choice":  # custom values reach the config's check, whose message names them
        return gr.Dropdown(list(ALGORITHMS) if f.key == "algorithm" else model_names(), value=value,
                           allow_custom_value=True, **common)
    if f.kind in ("int", "float") and f.optional:  # a Number box cannot be empty (it sends 0): text it is
        return gr.Textbox(value="" if value is None else str(value), placeholder="default", **common)
    if f.kind in ("int", "float"):  # no precision=0 for ints: it would round 2.5 to 2 before the check
        return gr.Number(value=value, **common)
    if f.kind == "lines":
        return gr.Textbox(value=value, lines=3, max_lines=12, **common)
    return gr.Textbox(value=value, **common)


def queue_message(run_id: int) -> str:
    from jobs import api

    where = api.queue_position(run_id)
    if api.workers_alive() == 0:
        return f"⚠️ Queued run **#{run_id}**, but no worker is alive to train it. {NO_WORKER.split(': ', 1)[1]}"
    if where["ahead"] == 0 and where["running"] == 0:
        place = "it starts as soon as the worker picks it up"
    else:
        place = (f"position {where['ahead'] + 1} in the queue: {where['ahead']} queued before it, "
                 f"{where['running']} running")
    predicted = api.get_run(run_id).get("estimate")
    cost_note = (f" Expected to take {cost.span(predicted)} once it starts ({predicted['basis']})."
                 if predicted else "")
    return f"✅ Queued run **#{run_id}**: {place}.{cost_note} Watch it in **Monitor**."


def submit(profile: gr.OAuthProfile | None, authorized: bool, preset: str, name: str, *values) -> tuple[str, int]:
    """Validate and queue; returns (message, run id)."""
    from jobs import api

    auth.guard(authorized, profile)
    if not forms.known(preset):
        raise gr.Error(f"Not queued: unknown preset; known: {', '.join(forms.PRESETS)}, a saved one (★) or run #ID")
    config, errors = forms.form_to_config(preset, dict(zip(forms.KEYS, values)))
    if errors:
        raise page_error("Not queued: " + "; ".join(f"{k}: {redact(m)}" for k, m in errors.items()))
    try:
        no_gpu = cost.gpu_problem(parse_config(config))
    except ConfigError:
        no_gpu = None  # api.submit below names the problem
    if no_gpu:
        raise page_error(f"Not queued: {no_gpu}")
    try:  # api.submit validates with the CLI's rules (the validator above showed them per field)
        run_id = api.submit(config, name=str(name or "").strip()[:200] or forms.default_name(config))
    except (api.ConfigError, api.QueueError) as err:
        raise page_error(f"Not queued: {page_text(err)}") from None
    return queue_message(run_id), run_id


def submit_named(profile: gr.OAuthProfile | None, authorized: bool, preset: str, name: str, *values):
    """The API's /submit: as the Launch button, with the values left out (None) taken from the preset."""
    return submit(profile, authorized, preset, name, *submit_api.completed(preset, values))


def validate_named(authorized: bool, preset: str, name: str, *values):
    return validate_form(authorized, preset, name, *submit_api.completed(preset, values))


def validate_form(authorized: bool, preset: str, name: str, *values):
    """Gradio's validator: one gr.validate per input, so each message shows at its field."""
    if not forms.known(preset):
        errors = {"": f"unknown preset; known: {', '.join(forms.PRESETS)}, a saved one (★) or run #ID"}
    else:
        _, errors = forms.check(preset, dict(zip(forms.KEYS, values)))
    errors = {key: redact(message) for key, message in errors.items()}  # a refused path lists this machine's folders
    general = errors.pop("", None)
    return [gr.validate(True, ""), gr.validate(general is None, general or ""), gr.validate(True, "")] + [
        gr.validate(key not in errors, errors.get(key, "")) for key in forms.KEYS]


def field_states(algorithm: str) -> list:
    """Greys out the settings the chosen algorithm does not read (G²RPO's K and Λ under a baseline;
    η and the clip range under DiffusionNFT), in forms.ONLY_FOR's order."""
    return [gr.update(interactive=forms.applies(key, algorithm)) for key in forms.ONLY_FOR]


def worker_line() -> str:
    """Whether a worker is alive to train what is launched (its heartbeat, jobs/heartbeat.py)."""
    from jobs import api

    slots = api.workers_alive()
    if slots == 0:
        return f"⚠️ {NO_WORKER}"
    return f"Worker: alive ({slots} job slot{'s' if slots > 1 else ''})."


FORM_HAS_ERRORS = "**Cost**: not shown while the form has errors; Launch shows each under its field"


def errors_line(errors: dict[str, str]) -> str:
    """Instead of a cost: the form's problems, each in a few words (an estimate's refusal, which
    names no field, in full: it says what the run would cost)."""
    labels = {f.key: f.label for f in forms.FIELDS}
    problems = [f"{labels[key]}: {redact(message)[:120]}" if key in labels else redact(message)[:400]
                for key, message in errors.items()]
    return f"{FORM_HAS_ERRORS}: " + " · ".join(problems)


def cost_line(preset: str, *values) -> str:
    """The cost of the run the form describes, once every field is valid (a cost for a form that
    cannot be launched would be a cost of nothing)."""
    values = dict(zip(forms.KEYS, values))
    if not forms.known(preset):
        return ""
    config, errors = forms.check(preset, values)
    if errors:
        return errors_line(errors)
    return cost.preview(preset, values)


def fit_intervals(preset: str, iterations, touched: list):
    """The checkpoint and sample intervals fitted to the iterations, but for those the user set."""
    if not forms.known(preset):
        return [gr.skip()] * len(forms.INTERVALS)
    fitted = forms.fitted_intervals(preset, iterations)
    return [gr.skip() if key in touched else fitted[key] for key in forms.INTERVALS]


def build(authorized: gr.State) -> dict:
    first = next(iter(forms.PRESETS))
    values = forms.preset_values(first)
    with gr.Row():
        preset = gr.Dropdown(list(forms.PRESETS), value=first, label="Preset", scale=2, allow_custom_value=True,
                             elem_id="launch-preset",
                             info="a config from configs/, one you saved (★), or a run's (run #ID); edit any field below")
        name = gr.Textbox(label="Run name", placeholder="optional", scale=2, elem_id="field-name")
    fields = {}
    basic = [f for f in forms.FIELDS if not f.advanced]
    for row in range(0, len(basic), 4):
        with gr.Row():
            for f in basic[row:row + 4]:
                fields[f.key] = _component(f, values[f.key], values["algorithm"])
    with gr.Accordion("More settings", open=False):
        advanced = [f for f in forms.FIELDS if f.advanced]
        for row in range(0, len(advanced), 4):
            with gr.Row():
                for f in advanced[row:row + 4]:
                    fields[f.key] = _component(f, values[f.key], values["algorithm"])
    with gr.Accordion("Save the form as a preset of your own", open=False):
        with gr.Row():
            preset_name = gr.Textbox(label="Preset name", placeholder="e.g. nft short", scale=3,
                                     elem_id="preset-name", max_length=80)
            save_preset = gr.Button("Save preset", scale=1, elem_id="save-preset")
            delete_preset = gr.Button("Delete the selected saved preset", scale=1, elem_id="delete-preset")
    estimate = gr.Markdown(cost.preview(first, values), elem_id="launch-cost")
    workers = gr.Markdown(elem_id="launch-workers")
    gr.Timer(10).tick(worker_line, None, workers, api_visibility="private", show_progress="hidden")
    button = gr.Button("Launch run", variant="primary", elem_id="launch-button")
    message = gr.Markdown(elem_id="launch-message")
    run_id = gr.Number(visible=False, precision=0)
    inputs = [authorized, preset, name] + [fields[k] for k in forms.KEYS]

    touched = gr.State([])  # the intervals the user set: they no longer follow the iterations

    def fill(label):  # a preset picked: its values in every field (a typed-in unknown one changes nothing)
        if not forms.known(label):
            return [gr.skip()] * (len(forms.KEYS) + 1)
        return [forms.preset_values(label)[k] for k in forms.KEYS] + [[]]

    preset.change(fill, preset, [fields[k] for k in forms.KEYS] + [touched], api_visibility="private")
    for key in forms.INTERVALS:
        fields[key].input(lambda t, key=key: sorted({*t, key}), touched, touched, api_visibility="private",
                          show_progress="hidden")
    fields["iterations"].change(fit_intervals, [preset, fields["iterations"], touched],
                                [fields[k] for k in forms.INTERVALS], api_visibility="private", show_progress="hidden")
    form = [preset] + [fields[k] for k in forms.KEYS]
    save_preset.click(saved_presets.in_message(saved_presets.save), [authorized, preset, preset_name] + form[1:],
                      [preset, message], api_name="save_preset_page", api_visibility="private")
    delete_preset.click(saved_presets.in_message(saved_presets.delete), [authorized, preset], [preset, message],
                        api_name="delete_preset_page", api_visibility="private")
    dependent = list(forms.ONLY_FOR)
    fields["algorithm"].change(field_states, fields["algorithm"], [fields[k] for k in dependent],
                               api_visibility="private", show_progress="hidden")
    gr.on([preset.change] + [fields[k].change for k in forms.KEYS], cost_line, [preset] + [fields[k] for k in forms.KEYS],
          estimate, api_visibility="private", show_progress="hidden", trigger_mode="always_last")
    button.click(user_errors(submit), inputs, [message, run_id], validator=user_errors(validate_form),
                 api_name="submit_page", api_visibility="private", concurrency_limit=1)  # the API's is below
    # The API's /submit: named parameters, None keeping the preset's value (app/submit_api.py)
    gr.Button(visible=False).click(user_errors(submit_api.named(submit_named)), [authorized] + submit_api.inputs(),
                                   [message, run_id], validator=user_errors(validate_named), api_name="submit",
                                   concurrency_limit=1)
    return {"run_id": run_id, "message": message, "workers": workers, "preset": preset,
            "fields": [fields[k] for k in forms.KEYS]}
