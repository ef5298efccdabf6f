"""A link per run, and a page that survives a reload: the URL carries the open run and tab
(`?run=7&tab=monitor`), written by the page as they change (history.replaceState: no reload, no
new history entry) and read back when a page is opened. With no run in the URL the Monitor opens
the run in progress, when there is one.
"""
from __future__ import annotations

import gradio as gr

TABS = ("launch", "runs", "monitor", "compare", "overlay")  # the gr.Tab ids, as the URL names them


OPENED_JS = "() => { window.g2rpoOpened = true; }"  # after the page applied its URL (open_page)


def set_param_js(key: str, value: str | None = None) -> str:
    """JavaScript for an event's `js=`: put `key` in the page's URL, set to `value` or else to
    the event's first input (removed when empty); other parameters (?__theme=dark) stay. Nothing
    before the page has read its URL: Gradio selects the first tab as it mounts, which would
    overwrite the tab the URL names before it is read."""
    given = "value" if value is None else repr(value)
    return f"""(value) => {{
        if (!window.g2rpoOpened) return value;
        const url = new URL(window.location.href), v = {given};
        if (v === null || v === undefined || v === '') url.searchParams.delete('{key}');
        else url.searchParams.set('{key}', v);
        window.history.replaceState(window.history.state, '', url);
        return value;
    }}"""


def wanted_run(text) -> int | None:
    """The run a URL's ?run= names, if it is a stored run; None otherwise."""
    from jobs import api

    try:
        run_id = int(str(text).strip())
        api.get_run(run_id, checkpoints=False)
    except (TypeError, ValueError, api.JobError):
        return None
    return run_id


def running_run() -> int | None:
    """The newest run in progress, or None."""
    from jobs import api

    found = api.list_runs(status="running", limit=1)
    return found[0]["id"] if found else None


def opened(request: gr.Request | None) -> tuple[int | None, int | None, str | None]:
    """(the run the URL names, the run the Monitor opens, the tab to show) for a page opened with
    `request`'s URL. A run named without a tab opens in the Monitor."""
    params = dict(request.query_params) if request is not None else {}
    named = wanted_run(params.get("run")) if params.get("run") else None
    tab = params.get("tab") if params.get("tab") in TABS else None
    if named is not None:
        return named, named, tab or "monitor"
    return None, running_run(), tab
