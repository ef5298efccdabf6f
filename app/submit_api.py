"""The HTTP API's /submit: the Launch form's fields as named parameters, and the preset honoured.

    from gradio_client import Client
    client = Client("http://127.0.0.1:7860/")
    message, run_id = client.predict(preset="DiffusionNFT · built-in model", iterations=20, api_name="/submit")

Every field is a named parameter (`client.view_api()` lists them); one left out (None) keeps the
named preset's value, and the checkpoint and sample intervals left out fit the iterations, as the
form's do. The page's own button is another event: the form always sends every value, and a
cleared box there is a problem to show, not "the preset's value".
"""
from __future__ import annotations

import inspect

import gradio as gr

from app import forms

HINTS = {"int": int, "float": float}


def _annotation(f: forms.Field):
    return HINTS.get(f.kind, str) | None


def inputs() -> list:
    """Hidden components with no value, one per parameter after the login state: the API's
    parameters have no default but None (a component's initial value would become the default)."""
    return [gr.Textbox(visible=False, label="Preset"), gr.Textbox(visible=False, label="Run name")] + [
        gr.Number(visible=False, label=f.label) if f.kind in HINTS and not f.optional
        else gr.Textbox(visible=False, label=f.label) for f in forms.FIELDS]


def named(handler):
    """`handler(profile, authorized, preset, name, *values)` with a signature that names each value
    after its form field (Gradio names the API's parameters from the handler's signature)."""
    P = inspect.Parameter
    parameters = [P("profile", P.POSITIONAL_OR_KEYWORD, annotation=gr.OAuthProfile | None),
                  P("authorized", P.POSITIONAL_OR_KEYWORD, annotation=bool),
                  P("preset", P.POSITIONAL_OR_KEYWORD, annotation=str),
                  P("name", P.POSITIONAL_OR_KEYWORD, default=None, annotation=str | None)]
    parameters += [P(f.key, P.POSITIONAL_OR_KEYWORD, default=None, annotation=_annotation(f)) for f in forms.FIELDS]
    handler.__signature__ = inspect.Signature(parameters)
    handler.__annotations__ = {p.name: p.annotation for p in parameters}  # what Gradio's type checks read
    return handler


def completed(preset, values: tuple) -> list:
    """The values with those left out filled from the preset (forms.complete); unchanged for an
    unknown preset, whose check says so."""
    if not forms.known(preset):
        return list(values)
    filled = forms.complete(preset, dict(zip(forms.KEYS, values)))
    return [filled[key] for key in forms.KEYS]
