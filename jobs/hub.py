"""Push a run's LoRA to the Hugging Face Hub: the export's `lora/` folder (weights, model card,
sample images) as one commit with huggingface_hub's `upload_folder`, so a failed push leaves no
half-uploaded files (a commit lands whole or not at all).

The token is huggingface_hub's (HF_TOKEN, or `hf auth login`); without one nothing is contacted.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from jobs import runs


class PushError(ValueError):
    """The push cannot be done: no token, a malformed repository id, no LoRA checkpoint."""


class HubError(RuntimeError):
    """The Hub refused the push or could not be reached; nothing of it was uploaded."""


def push(run_id: int, repo_id: str, private: bool = False) -> str:
    """Create (or reuse) the model repository `repo_id` and upload the run's LoRA folder to it as
    one commit; returns the commit's URL. PushError when there is no token, the id is malformed or
    the run has no LoRA checkpoint (nothing is contacted then); HubError when the Hub refuses or
    cannot be reached."""
    from huggingface_hub import HfApi, get_token

    from jobs import export
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(repo_id)
    except HFValidationError as err:
        raise PushError(f"{repo_id[:100]!r} is not a Hub repository id (user/name): {err}") from None
    run = runs.get(run_id)
    checkpoint = run.last_checkpoint
    if not checkpoint:
        raise PushError(f"run {run_id} has no checkpoint yet: nothing to push")
    token = get_token()
    if token is None:
        raise PushError("pushing needs a Hugging Face token with write access: set HF_TOKEN (on a Space, as a "
                        "secret) or run `hf auth login`; nothing was uploaded")
    with tempfile.TemporaryDirectory(prefix=f"g2rpo-push-{run_id}-") as tmp:
        folder = Path(tmp) / "export"
        export.export_run(run_id, folder, repo_id)
        lora = folder / export.LORA
        if not (lora / export.LORA_WEIGHTS).exists():
            raise PushError(f"run {run_id} has no LoRA to push (a full fine-tune's transformer is not pushed here)")
        api = HfApi(token=token)
        stage = "create the repository"
        try:
            api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
            stage = "upload to"
            info = api.upload_folder(repo_id=repo_id, repo_type="model", folder_path=lora,
                                     commit_message=f"G²RPO studio: run {run_id} ({run.algorithm}, {checkpoint})")
        except Exception as err:  # httpx's, HfHubHTTPError, OfflineModeIsEnabled, ...: all mean the same here
            cause = " ".join(str(err).split())[:300] or type(err).__name__
            raise HubError(f"could not {stage} {repo_id}: {cause}. Nothing of this push was uploaded (an upload "
                           "is one commit); try again once the Hub is reachable") from None
    return info.commit_url
