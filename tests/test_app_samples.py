"""The Monitor's sample grid: each sample prompt's base image beside the chosen iteration's, with
their scores and the change since base; the slider moves over the iterations that drew samples."""
from PIL import Image

from app import monitor, monitor_tab, samples_grid
from jobs import runs, settings
from jobs.sink import RunSink
from jobs.testing import fake_config, fake_record

PROMPTS = ["a red circle on a black background", "<b>two</b> squares"]


def stored_with_samples(store_scores: bool = True) -> int:
    """Samples at 0 (base), 2 and 4 iterations; brightness 0.1 + 0.1 x iterations/2 + 0.05 x position."""
    config = {**fake_config(iterations=4), "sample_prompts": PROMPTS}
    run_id = runs.create(config)
    folder = settings.run_dir(run_id)
    sink = RunSink(run_id)
    sink.begin(0)
    for it in range(4):
        record = fake_record(it, k=2, lambdas=2, group=3)
        for key, trained in (("base_samples", 0), ("samples", it + 1)):
            if (key == "base_samples") != (it == 0) or trained % 2:
                continue
            paths = [f"samples/iter_{trained:06d}/{i:02d}.png" for i in range(len(PROMPTS))]
            for path in paths:
                (folder / path).parent.mkdir(parents=True, exist_ok=True)
                Image.new("RGB", (32, 32), (40 * trained, 0, 0)).save(folder / path)
            record[key] = paths
            if store_scores:
                record[key.replace("samples", "sample_scores")] = {
                    "brightness": [0.1 + 0.05 * trained + 0.05 * i for i in range(len(PROMPTS))]}
        sink.write(record)
    return run_id


def test_the_grid_shows_each_prompt_base_beside_the_chosen_iteration_with_scores(store):
    view, _ = monitor.poll(None, stored_with_samples())
    assert samples_grid.sampled(view) == [2, 4]
    html = samples_grid.grid(view)  # following: the newest
    assert "after 4 iterations" in html and html.count("<img") == 2 * len(PROMPTS)
    assert "brightness 0.300 (+0.200)" in html and "brightness 0.100<" in html  # prompt 0 after 4, and at base
    assert "&lt;b&gt;two&lt;/b&gt; squares" in html and "<b>two" not in html  # prompts are escaped
    earlier = samples_grid.grid(view, 2.4, follow=False)  # the sampled iteration nearest to the slider
    assert "after 2 iterations" in earlier and "brightness 0.200 (+0.100)" in earlier
    update = samples_grid.slider(view, 3, False)
    assert (update["minimum"], update["maximum"], update["step"], update["value"]) == (2, 4, 2, 2)
    grid, slider, follow = monitor_tab.pick_iteration(view, 4)
    assert "after 4 iterations" in grid and slider["value"] == 4 and follow is False


def test_samples_without_stored_scores_say_so_and_a_run_without_samples_too(store):
    view, _ = monitor.poll(None, stored_with_samples(store_scores=False))
    assert samples_grid.grid(view).count("no scores stored") == 2 * len(PROMPTS)
    empty, _ = monitor.poll(None, runs.create(fake_config()))
    assert "No samples yet" in samples_grid.grid(empty)
    assert samples_grid.slider(empty, None, True)["interactive"] is False
