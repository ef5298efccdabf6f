"""The G²RPO web UI: Launch, Runs, Monitor, Compare, Overlay.

The UI process only reads and writes the jobs database and queue (jobs.api) and draws figures;
training runs in the worker, images for Compare in a sampler process. It never imports torch.
"""
from __future__ import annotations

from pathlib import Path

import gradio as gr

from app import auth, compare_tab, launch_tab, links, monitor_tab, numbers, overlay_tab, run_followup, runs_tab, saved_presets

STATIC = Path(__file__).resolve().parent.parent / "static"
INTRO = """# G²RPO studio
Online RL for text-to-image flow models with **granular** credit: G²RPO branches the sampler at
single denoising steps and scores each at several granularities, so you can see *where* in the
trajectory the reward comes from. Launch a run, watch it learn, compare base and tuned."""


def build_demo() -> gr.Blocks:
    with gr.Blocks(title="G²RPO studio") as demo:
        authorized = gr.State(False)  # this session logged in (only asked when a password is set)
        gr.Markdown(INTRO)
        auth.login_row(authorized)
        pages = {}
        with gr.Tabs() as tabs:
            with gr.Tab("Launch", id="launch") as pages["launch"]:
                launch = launch_tab.build(authorized)
            with gr.Tab("Runs", id="runs") as pages["runs"]:
                runs = runs_tab.build(authorized)
            with gr.Tab("Monitor", id="monitor") as pages["monitor"]:
                monitor = monitor_tab.build()
            with gr.Tab("Compare", id="compare") as pages["compare"]:
                compare = compare_tab.build(authorized)
            with gr.Tab("Overlay", id="overlay") as pages["overlay"]:
                overlay = overlay_tab.build()

        def show_run(run_id):  # a launched or selected run: open it in Monitor, preselect it in Compare
            try:
                run_id = numbers.run_id(run_id)
            except gr.Error:  # none (or no run id) selected: nothing to open
                return gr.skip(), gr.skip(), gr.skip()
            choices = runs_tab.run_choices()
            return (gr.update(choices=choices, value=run_id), gr.update(choices=choices, value=run_id),
                    gr.Tabs(selected="monitor"))

        def open_page(request: gr.Request):
            """A page opened (or reloaded): the runs that exist now in every list, and the run and tab
            its URL names (app/links.py); the Monitor opens the running run when none is named."""
            named, shown, tab = links.opened(request)
            choices = runs_tab.run_choices()
            runs_now = gr.update(choices=choices)
            return (gr.update(choices=choices, value=shown) if shown is not None else runs_now,
                    gr.update(choices=choices, value=named) if named is not None else runs_now, runs_now,
                    gr.update(choices=overlay_tab.overlay_choices()), str(named) if named is not None else gr.skip(),
                    gr.Tabs(selected=tab) if tab else gr.skip(), saved_presets.choices())

        def open_running(run_id):  # the Monitor opened with no run: the one in progress, if any
            running = None if run_id not in (None, "") else links.running_run()
            return gr.skip() if running is None else gr.update(choices=runs_tab.run_choices(), value=running)

        demo.load(open_page, None, [monitor["run"], compare["run"], compare["run_b"], overlay["runs"],
                                    runs["selected"], tabs, launch["preset"]], api_visibility="private").then(
            None, None, None, js=links.OPENED_JS, api_visibility="private")
        demo.load(launch_tab.worker_line, None, launch["workers"], api_visibility="private")
        # The URL follows the open run and tab, so a reload or a shared link comes back to them
        monitor["run"].change(None, monitor["run"], None, js=links.set_param_js("run"), api_visibility="private")
        for tab_id, page in pages.items():
            page.select(None, None, None, js=links.set_param_js("tab", tab_id), api_visibility="private")
        pages["monitor"].select(open_running, monitor["run"], monitor["run"], api_visibility="private")
        launch["run_id"].change(show_run, launch["run_id"], [monitor["run"], compare["run"], tabs],
                                api_visibility="private").then(
            None, None, None, js=links.set_param_js("tab", "monitor"), api_visibility="private")
        runs["selected"].change(lambda r: show_run(r)[:2], runs["selected"], [monitor["run"], compare["run"]],
                                api_visibility="private")
        for chosen in (launch["run_id"], runs["selected"]):  # Compare then compares that run's checkpoint
            chosen.change(lambda r: gr.skip() if r in (None, "") else compare_tab.RUN_SOURCE, chosen,
                          compare["source"], api_visibility="private")
        runs["clone"].click(run_followup.clone, runs["selected"], [launch["preset"]] + launch["fields"],
                            api_visibility="private").success(
            lambda: gr.Tabs(selected="launch"), None, tabs, api_visibility="private").then(
            None, None, None, js=links.set_param_js("tab", "launch"), api_visibility="private")
    return demo


def launch_options() -> dict:
    """What demo.launch() needs beyond host and port (Gradio 6 takes theme and CSS here).

    Nothing is served from the data folder (database, queue, logs, checkpoints): it is blocked, and
    never in allowed_paths. Handlers hand Gradio pixels (samples, comparisons) or an export written
    to a temporary folder, which Gradio copies into its own cache and serves from there."""
    from starlette.middleware import Middleware

    from app.http_limits import BodyLimit, max_upload_bytes
    from jobs import settings

    return {"theme": gr.themes.Soft(), "css_paths": [STATIC / "style.css"], "allowed_paths": [],
            "head": f"<script>{(STATIC / 'ab_keys.js').read_text()}</script>",  # the blind test's keys
            "blocked_paths": [str(settings.data_dir())],
            # bodies and uploads bounded before they are read (app/http_limits.py); Gradio's own upload
            # bound too, in case a route of its bypasses the middleware
            "app_kwargs": {"middleware": [Middleware(BodyLimit)]}, "max_file_size": max(1, max_upload_bytes()),
            "enable_monitoring": False}  # Gradio's traffic dashboard (/monitoring) is not for strangers
