"""Presets of one's own in the Launch form: save the form under a name, pick it later from the
Preset list (marked ★), delete it. Stored in the database (jobs.api.save_preset), so every page sees
them; login-guarded like launching, since they write to the app's storage."""
from __future__ import annotations

import functools

import gradio as gr

from app import auth, forms
from app.errors import user_errors
from app.escape import markdown as escape


def in_message(fn):
    """fn's (Preset list, message), or on a problem the list unchanged and the problem as the message."""
    checked = user_errors(fn)

    @functools.wraps(fn)  # keeps the signature Gradio reads (the OAuth profile)
    def handler(*args, **kwargs):
        try:
            return checked(*args, **kwargs)
        except gr.Error as err:
            return gr.skip(), f"⚠️ {getattr(err, 'message', None) or err}"
    return handler


def choices(selected: str | None = None):
    """The Preset list as it is now (built-in, then saved), keeping `selected` when given."""
    labels = forms.preset_labels()
    if selected is not None and selected not in labels:  # a run's config cloned into the form
        labels.append(selected)
    return gr.update(choices=labels) if selected is None else gr.update(choices=labels, value=selected)


def save(profile: gr.OAuthProfile | None, authorized: bool, preset: str, name: str, *values):
    """The form, validated as Launch validates it, under `name`; the Preset list then selects it."""
    from jobs import api

    auth.guard(authorized, profile)
    if not forms.known(preset):
        raise gr.Error("Not saved: unknown preset.")
    config, errors = forms.check(preset, dict(zip(forms.KEYS, values)))
    if errors:
        raise gr.Error(f"Not saved: the form has {len(errors)} problem{'s' if len(errors) > 1 else ''} "
                       f"({', '.join(k or 'general' for k in errors)}); Launch shows each under its field.")
    stored = api.save_preset(name, config)
    return choices(forms.SAVED + stored), f"Saved the form as preset **{forms.SAVED}{escape(stored)}**."


def delete(profile: gr.OAuthProfile | None, authorized: bool, preset: str):
    from jobs import api

    auth.guard(authorized, profile)
    if not isinstance(preset, str) or not preset.startswith(forms.SAVED):
        raise gr.Error("Pick a saved preset (★) to delete; the built-in ones stay.")
    api.delete_preset(preset.removeprefix(forms.SAVED))
    return choices(next(iter(forms.PRESETS))), f"Deleted preset {escape(preset)}."
