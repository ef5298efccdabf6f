"""The overlay tab's table and reward choices, on hand-made runs (the API test draws real ones)."""
from app import overlay_tab


def run(label, rewards, evaluations=()):
    metrics = [{"iteration": i, "reward": 2 * r, "model_evaluations": 100, "rewards": {"preference": {"mean": r}}}
               for i, r in enumerate(rewards)]
    return {"label": label, "metrics": metrics, "evaluations": list(evaluations)}


def test_summary_averages_the_last_iterations_and_shows_the_last_evaluation():
    a = run("#1 g2rpo", [0.0] * 5 + [0.5] * 10, [{"trained": 15, "scores": {"preference": 0.6, "shape": 0.3}}])
    b = run("#2 dancegrpo", [0.1, 0.3])
    table = overlay_tab.summary([a, b], "preference").splitlines()
    assert table[2] == "| #1 g2rpo | 15 | 1,500 | 0.5000 | 0.6000 |"
    assert table[3] == "| #2 dancegrpo | 2 | 200 | 0.2000 | – |"
    assert overlay_tab.summary([a], "total").splitlines()[2] == "| #1 g2rpo | 15 | 1,500 | 1.0000 | – |"


def test_reward_choices_cover_training_and_evaluation_rewards():
    a = run("#1", [0.1], [{"trained": 1, "scores": {"preference": 0.2, "shape": 0.3}}])
    assert overlay_tab.reward_names([a, run("#2", [])]) == ["preference", "shape", "total"]


def test_running_runs_can_be_overlaid(store):
    from jobs import runs
    from jobs.models import utcnow
    from jobs.testing import fake_config

    queued, running = runs.create(fake_config()), runs.create(fake_config())
    runs._transition(running, ("queued",), status="running", heartbeat_at=utcnow())
    assert [run_id for _, run_id in overlay_tab.overlay_choices()] == [running]  # not the one yet to start
