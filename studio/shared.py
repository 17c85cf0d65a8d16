"""The objects every visitor of the studio shares: the work folder, which models may be opened, the
one training job and the loaded models. Built once, when the studio is imported."""
from __future__ import annotations

import os
from pathlib import Path

from finetune.cache import ModelCache
from finetune.models import EMBEDDED_MODEL, ModelPolicy
from finetune.runner import TrainingJob

WORK = Path(os.environ.get("STUDIO_HOME", "runs/studio"))  # runs, staged uploads and zips go here
# Model folders a visitor may open: the embedded model's folder and the app's own runs (not the
# uploads beside them: those are visitors' files). More can be added for a local studio with
# STUDIO_MODEL_ROOTS (folders separated by os.pathsep).
POLICY = ModelPolicy(tuple([str(Path(EMBEDDED_MODEL).parent), str(WORK / "runs")]
                           + [p for p in os.environ.get("STUDIO_MODEL_ROOTS", "").split(os.pathsep) if p]))
JOB = TrainingJob(WORK / "runs", policy=POLICY)
MODELS = ModelCache(max_models=3, policy=POLICY)  # base and tuned side by side, plus one being looked at
SCRATCH = "scratch"                # base-model choice meaning "a new model from scratch"
EXAMPLE_SENTENCE = "これはペンです。これはリンゴです。"
POLL_SECONDS = 1.0                 # how often an open page asks for the training status
ON_SPACE = bool(os.environ.get("SPACE_ID"))


def hub_token_present() -> bool:
    from huggingface_hub import get_token
    return bool(get_token())

