import os
import sys

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):  # two workers on two cores: one torch thread each, not two
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from engine.config import load_config


def pytest_collection_modifyitems(items):
    """A browser test drives Chromium against the shared app server while the other worker trains
    or samples: a timing it cannot control. One that fails is run once more (pytest-rerunfailures;
    the summary counts it as "rerun"); one that fails twice fails the suite. Every other test gets
    one try."""
    for item in items:
        if item.module.__name__.split(".")[-1].startswith("test_app_browser"):
            item.add_marker(pytest.mark.flaky(reruns=1, reruns_delay=2))


def pytest_terminal_summary(terminalreporter):
    """How many bad inputs each surface refused (tests/test_bad_inputs.py), when it ran."""
    corpus = sys.modules.get("tests.test_bad_inputs")
    if corpus is not None and corpus.TRIED:
        tried = ", ".join(f"{count} through {surface}" for surface, count in corpus.TRIED.items())
        terminalreporter.write_line(f"bad-input corpus ({len(corpus.CORPUS)} cases): refused {tried}; "
                                    f"{sum(corpus.TRIED.values())} in all, each with a message, nothing stored")


PROMPTS = ["a red circle on a black background", "two blue squares on a white background",
           "three yellow triangles on a gray background"]


@pytest.fixture
def small_config():
    """A config small enough for a CPU test: the random 16x16 model, few branch steps, a small
    group, two prompts per iteration, a brightness reward a LoRA moves quickly."""

    def make(*overrides: str):
        base = ["model.name=tiny-flux", "rewards=[{name: brightness}]", f"prompts={PROMPTS}",
                "algorithm.group_size=4", "algorithm.branch_steps=[0,1,2,3]", "algorithm.granularities=[1,2]",
                "sampling.steps=8", "train.iterations=2", "train.prompts_per_iteration=2",
                "train.checkpoint_every=1000", "train.sample_every=1000", "train.eval_every=0"]
        return load_config("configs/g2rpo.yaml", base + list(overrides))

    return make


@pytest.fixture(scope="session")
def app_server(tmp_path_factory):
    """The app as `python app.py` runs it, on a free port: the UI in this process (it imports no
    torch), a real worker process and the sampler process, on a fresh data folder. Shared by the
    API and browser tests. Yields {"url", "data", "worker"}."""
    import os

    from jobs.testing import WorkerProcess

    data = tmp_path_factory.mktemp("app-data")
    saved = {k: os.environ.get(k) for k in ("G2RPO_DATA_DIR", "G2RPO_QUEUE_URL", "G2RPO_DATABASE_URL")}
    os.environ["G2RPO_DATA_DIR"] = str(data)
    for key in ("G2RPO_QUEUE_URL", "G2RPO_DATABASE_URL"):
        os.environ.pop(key, None)
    from app import sampler
    from app.server import free_port, serve
    from jobs import db

    db.dispose_all()
    worker = WorkerProcess({"G2RPO_DATA_DIR": str(data)}, data / "worker.log").start()
    port = free_port()
    demo = serve("127.0.0.1", port, block=False, quiet=True)
    try:
        yield {"url": f"http://127.0.0.1:{port}/", "data": data, "worker": worker}
    finally:
        demo.close()
        worker.stop()
        sampler.shutdown()
        db.dispose_all()
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.fixture
def store(tmp_path, monkeypatch):
    """A fresh SQLite store in this test's own data folder (no worker, no sampler)."""
    from jobs import db

    monkeypatch.setenv("G2RPO_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("G2RPO_DATABASE_URL", raising=False)
    db.dispose_all()
    yield
    db.dispose_all()
