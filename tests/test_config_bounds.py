"""Config bounds: every size-like setting has a limit an environment variable raises, floats are
finite, seeds are 32-bit, files named in a config are read only from the folders given, and no
message echoes long input or a file's content."""
import pytest

from engine.config import ConfigError, load_config
from engine.config.limits import LIMITS

SIZE_LIKE = {  # override -> the limit it crosses
    "algorithm.group_size=65": "group_size",
    "sampling.steps=101": "steps",
    "train.iterations=100001": "iterations",
    "train.micro_batch=257": "micro_batch",
    "train.prompts_per_iteration=65": "prompts_per_iteration",
    "lora.rank=513": "lora_rank",
    "train.movement_probe=65": "movement_probe",
    "model.resolution=2048": "resolution",
}


def problems(*overrides, **kwargs) -> list[str]:
    with pytest.raises(ConfigError) as err:
        load_config("configs/g2rpo.yaml", list(overrides), **kwargs)
    return err.value.problems


@pytest.mark.parametrize("override", list(SIZE_LIKE))
def test_each_size_like_setting_has_a_limit_its_variable_raises(override, monkeypatch):
    limit = LIMITS[SIZE_LIKE[override]]
    overrides = [override, "model.name=tiny-flux"]  # a model whose resolution can be set
    (problem,) = problems(*overrides)
    assert limit.env in problem and f"at most {limit.default:,}" in problem
    monkeypatch.setenv(limit.env, str(10 * limit.default))
    assert load_config("configs/g2rpo.yaml", overrides)  # raised deliberately: accepted


def test_a_limit_that_is_not_a_number_is_named(monkeypatch):
    monkeypatch.setenv("G2RPO_MAX_STEPS", "many")
    with pytest.raises(ConfigError, match="G2RPO_MAX_STEPS='many': a limit must be a whole number"):
        load_config("configs/g2rpo.yaml")


@pytest.mark.parametrize("override, message", [
    ("train.learning_rate=.inf", "train.learning_rate: must be a finite number, got inf"),
    ("algorithm.eta=.nan", "algorithm.eta: must be a finite number"),
    ("train.betas=[0.9, .inf]", "train.betas[1]: must be a finite number"),
    (f"train.seed={10**30}", "train.seed: seeds are 0 .. 4,294,967,295 (32-bit)"),
    ("train.seed=-1", "train.seed: seeds are 0"),
    ("train.iterations=2.5", "train.iterations: expected int, got 2.5"),
    ("lora.enabled=1", "lora.enabled: expected bool, got 1"),
    ("train.learning_rate=true", "train.learning_rate: expected float, got True"),
    ("algorithm.granularities=[1, 40]", "strides beyond the 16 steps: [40]"),
])
def test_floats_are_finite_and_types_strict(override, message):
    assert any(message in p for p in problems(override))


def test_a_huge_prompt_is_refused_in_a_short_message():
    message = str(pytest.raises(ConfigError, load_config, None, [f"prompts=['{'r' * 1_000_000}']"]).value)
    assert "at most 2,000 characters per prompt, got 1,000,000" in message and len(message) < 300


def test_many_bad_prompts_give_a_bounded_message():
    prompts = ", ".join(f"'zebra{i} on a black background'" for i in range(5000))
    err = pytest.raises(ConfigError, load_config, None, [f"prompts=[{prompts}]"]).value
    assert len(str(err)) < 2000 and "4,997 more prompts" in str(err)


def test_prompt_files_are_read_only_from_the_folders_given(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("mosquitto:!:19000:0:99999:7:::\n")
    allowed = tmp_path / "prompts"
    allowed.mkdir()
    (allowed / "ok.txt").write_text("a red circle on a black background\n")
    (allowed / "link.txt").symlink_to(secret)  # a link out of the folder counts as outside
    for path in (secret, allowed / "link.txt", tmp_path / "missing.txt", "/etc/shadow"):
        (problem,) = problems(f"prompts_file={path}", read_from=[allowed])
        assert "is outside the folders" in problem and "mosquitto" not in problem
        assert "No such file" not in problem  # says nothing about whether it exists
    assert load_config("configs/g2rpo.yaml", [f"prompts_file={allowed / 'ok.txt'}"], read_from=[allowed])
    (problem,) = problems(f"prompts_file={secret}")  # the CLI reads anywhere, and quotes a short excerpt only
    assert "unknown word(s) 'mosquitto'" in problem and "19000" not in problem


def test_local_model_and_reward_folders_need_the_folders_given_but_hub_ids_do_not(tmp_path):
    for override in ("model.path=/etc", "rewards=[{name: clip_score, model: /root}]"):
        assert "is outside the folders" in problems("model.name=flux" if "model.path" in override else
                                                    "model.name=builtin", override, read_from=[tmp_path])[0]
    messages = problems("model.name=flux", "model.path=nobody/not-a-model", read_from=[tmp_path])
    assert not any("outside" in m for m in messages)


@pytest.mark.parametrize("content, message", [
    (b"\xff\xfe train: {}", "not UTF-8 text (byte 0xff at position 0)"),
    (b"train: [unclosed\n", "not valid YAML at line 2"),
    (b"- a list\n", "expected a mapping of settings, got a list"),
    (b"secret: mosquitto\n", "unknown key(s) secret"),
])
def test_unreadable_config_files_say_why_without_quoting_them(tmp_path, content, message):
    path = tmp_path / "bad.yaml"
    path.write_bytes(content)
    err = str(pytest.raises(ConfigError, load_config, path).value)
    assert message in err and "mosquitto" not in err


def test_prompts_a_shapes_world_reward_cannot_read_are_refused_before_a_run(small_config):
    """Known words in another order encode fine, but preference and the verifiers read a prompt as a scene."""
    with pytest.raises(ConfigError, match=r"eval_prompts\[1\]: reward 'preference' scores shapes-world scenes only"):
        small_config('eval_prompts=["a red circle on a black background", "red circle a"]',
                     "eval_rewards=[preference]", "train.eval_every=1")
    small_config('eval_prompts=["red circle a"]', "eval_rewards=[brightness]", "train.eval_every=1")  # fine
