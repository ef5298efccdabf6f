"""Validation, stage 3 of 3: what the config names outside itself: the model and reward sources
(a path only from the allowed folders, judged by its text before any look at the disk), the
trackers' packages, the prompt files, and the prompts the model and the shapes world can read.
Stage 2 (engine/config/checks.py) has run; the jobs API adds the estimate after this one.
"""
from __future__ import annotations

from pathlib import Path

from engine.config.files import local_source_refused, read_prompts, refused
from engine.config.limits import excerpt, limit, too_large
from engine.training.tracking import problems as tracker_problems


def resource_problems(cfg, read_from: list[Path] | None, max_cached_prompts: int) -> list[str]:
    """Every problem of that kind, as lines; `read_from` as in engine.config.load_config."""
    from engine.models import model_problems

    errors: list[str] = []
    model_refused = cfg.model.path and local_source_refused("model.path", cfg.model.path, read_from)
    errors.extend([model_refused] if model_refused else model_problems(cfg.model))
    errors.extend(_reward_problems(cfg, read_from))
    errors.extend(tracker_problems(cfg.train.log_with))
    file_prompts = _read_prompt_files(cfg, read_from, errors)
    model_refusals = _prompt_problems(cfg, file_prompts)
    errors.extend(model_refusals or _world_prompt_problems(cfg, file_prompts))  # one reason per prompt
    if cfg.model.free_text_encoders and not errors:
        count = len(cfg.training_prompts())
        if count > max_cached_prompts:
            errors.append(f"model.free_text_encoders: {count:,} training prompts would be cached (up to 4 MB "
                          f"each with T5 at 512 tokens); at most {max_cached_prompts:,}, or keep the encoders")
    return errors


def _reward_problems(cfg, read_from: list[Path] | None) -> list[str]:
    from engine.rewards.base import reward_problems

    errors = []
    for i, r in enumerate(cfg.rewards):
        refusal = r.model and local_source_refused(f"rewards[{i}].model", r.model, read_from)
        errors.extend([refusal] if refusal else [f"rewards[{i}].name: {p}" for p in reward_problems(r.name, r.model)])
    trained = {r.name for r in cfg.rewards}  # evaluation reuses these, with their own weights
    for i, name in enumerate(cfg.eval_rewards):
        if name not in trained:
            errors.extend(f"eval_rewards[{i}]: {problem}" for problem in reward_problems(name))
    return errors


def _read_prompt_files(cfg, read_from: list[Path] | None, errors: list[str]) -> dict[str, list[str]]:
    """Prompts read from files, checked by the model below like inline ones."""
    file_prompts = {}
    for key in ("prompts_file", "eval_prompts_file"):
        path = getattr(cfg, key)
        if path is None:
            continue
        refusal = refused(key, path, read_from)
        if refusal:
            errors.append(refusal)
            continue
        try:
            prompts = read_prompts(path)
        except ValueError as err:
            errors.append(f"{key}: cannot read {excerpt(path)}: {err}")
            continue
        message = too_large("prompts", len(prompts))
        if not prompts or message:
            errors.append(f"{key}: {excerpt(path)} holds {message or 'no prompt'}")
        else:
            file_prompts[key] = prompts
    return file_prompts


def _world_prompt_problems(cfg, file_prompts: dict[str, list[str]]) -> list[str]:
    """The shapes world's rewards (preference, the verifiers) read each prompt as a scene: the
    prompts they score must parse, whatever model draws them (else the run would fail mid-way)."""
    from engine.rewards.base import WORLD_REWARDS
    from engine.world.scenes import parse_prompt

    scored = {"prompts": {r.name for r in cfg.rewards}, "eval_prompts": set(cfg.evaluation_rewards())}
    errors = []
    for key, rewards in scored.items():
        world = sorted(rewards & WORLD_REWARDS)
        prompts = getattr(cfg, key) if getattr(cfg, key) is not None else file_prompts.get(key.replace("prompts", "prompts_file"))
        for i, prompt in enumerate(prompts or [] if world else []):
            try:
                parse_prompt(prompt)
            except ValueError:
                errors.append(f"{key}[{i}]: reward {world[0]!r} scores shapes-world scenes only "
                              "('COUNT [SIZE] COLOUR SHAPE on a BACKGROUND background'), not this prompt")
                break  # one is enough to say what is wrong
    return errors


def _prompt_problems(cfg, file_prompts: dict[str, list[str]]) -> list[str]:
    """Prompts the model cannot encode (an unknown word for the built-in model), from the config or
    its files: a few inline ones are listed, a file's first only (its unknown words, not the line)."""
    from engine.models import check_model_prompts, model_names

    if cfg.model.name not in model_names():
        return []
    errors = []
    sources = {key: getattr(cfg, key) for key in ("prompts", "sample_prompts", "eval_prompts")}
    for key, prompts in {**sources, **file_prompts}.items():
        from_file = key in file_prompts
        bad, shown = 0, 1 if from_file else 3
        for i, prompt in enumerate(prompts or []):
            if from_file and len(prompt) > limit("prompt_chars"):
                message = f"a prompt of {len(prompt):,} characters; at most {limit('prompt_chars'):,}"
            else:
                try:
                    check_model_prompts(cfg.model, [prompt], quote=not from_file)
                    continue
                except ValueError as err:
                    message = str(err)
            bad += 1
            if bad <= shown:
                errors.append(f"{key}: line {i + 1}: {message}" if from_file else f"{key}[{i}]: {message}")
        if bad > shown:
            errors.append(f"{key}: ... and {bad - shown:,} more {'lines' if from_file else 'prompts'} "
                          "the model cannot take")
    return errors
