"""Going on from a run in the Runs tab: train it longer, clone its settings into the Launch form,
read its whole config.

Train longer continues a completed (or stopped) run from its last checkpoint for more iterations,
at the next iteration, keeping its records and first start (jobs.api.train_longer). Clone puts the
run's stored config under the Launch form as its preset ("run #ID"): every field shows the run's
value and the settings the form has no field for come along too.
"""
from __future__ import annotations

import gradio as gr
import yaml

from app import auth, forms
from app.numbers import selected_id


def train_longer(profile: gr.OAuthProfile | None, authorized: bool, run_id, more) -> str:
    from jobs import api

    auth.guard(authorized, profile)  # it spends compute like launching
    run_id = selected_id(run_id)
    try:
        number = float(more)
    except (TypeError, ValueError):
        number = float("nan")
    if not number == number or number != int(number) or number < 1:
        raise gr.Error(f"Train longer by a whole number of iterations >= 1, not {str(more)[:20]!r}.")
    point = api.resume_point(run_id)
    try:
        total = api.train_longer(run_id, int(number))
    except (api.JobError, api.QueueError) as err:
        raise gr.Error(str(err)) from None
    redo = f"; {point['redo']} iterations after its last checkpoint are redone" if point["redo"] else ""
    return (f"Run #{run_id} queued to train longer: iterations {point['start'] + 1}–{total} of {total}, its "
            f"{point['done']} done kept{redo}. Watch it in **Monitor**.")


def clone(run_id):
    """(the Launch form's Preset list and value, then every field) holding the run's config."""
    from jobs import api

    try:
        number = selected_id(run_id)
        api.get_run(number, checkpoints=False)
    except (gr.Error, api.JobError) as err:
        raise gr.Error(getattr(err, "message", None) or str(err)) from None
    label = forms.run_label(number)
    values = forms.preset_values(label)
    return [gr.update(choices=[*forms.preset_labels(), label], value=label)] + [values[k] for k in forms.KEYS]


def config_yaml(run_id) -> str:
    """The run's whole stored config (validated and resolved: every default written out)."""
    from jobs import api

    try:
        run = api.get_run(selected_id(run_id), checkpoints=False)
    except (gr.Error, api.JobError):
        return ""
    return yaml.safe_dump(run["config"], sort_keys=False, allow_unicode=True)
