"""The objects every visitor of the studio shares: the work folder, which models may be opened, who
owns what, the training line and its one job, the loaded models, and the sweeper that deletes
anonymous visitors' files. Built once, when the studio is imported; nothing here starts a thread
that polls (an idle studio uses no CPU)."""
from __future__ import annotations

import hashlib
import hmac
import logging
import os
import threading
import time
from pathlib import Path

from finetune import hubmodels
from finetune.cache import ModelCache
from finetune.models import studio_policy
from finetune.runner import TrainingJob, portable_command
from finetune.workspace import sweep

from studio.owners import Owners
from studio.queue import TrainingQueue

log = logging.getLogger(__name__)

ON_SPACE = bool(os.environ.get("SPACE_ID"))  # a Hugging Face Space: strangers share this app


def work_folder() -> Path:
    """Where runs, uploads and zips go: STUDIO_HOME; else a Space's persistent storage (/data,
    which survives restarts) when it has one; else runs/studio."""
    if os.environ.get("STUDIO_HOME"):
        return Path(os.environ["STUDIO_HOME"])
    if ON_SPACE and os.path.isdir("/data") and os.access("/data", os.W_OK):
        return Path("/data/studio")
    return Path("runs/studio")


# Chosen once, at start: rinna/japanese-gpt2-xsmall when the Hub answers (or it is cached), else
# the embedded model with the reason (HUB_CHOICE.reason), which the page shows as a note.
HUB_CHOICE = hubmodels.default_base()
# Read once now, so that a bad STUDIO_MAX_MODEL_GB stops the studio at start, not at a visitor's load.
MAX_MODEL_BYTES = hubmodels.max_model_bytes()


def default_model() -> str:
    """The model every model choice starts from, and what an empty choice means: the default Hub
    model when it can be loaded, else the embedded model, which works offline (HUB_CHOICE)."""
    return HUB_CHOICE.model


def visitor_token(oauth_token) -> str | bool | None:
    """The token a visitor's Hub model loads use (see finetune.hubmodels on tokens): on a Space the
    signed-in visitor's own, else False (anonymous), never None (the server's HF_TOKEN would read
    for them); locally None (this machine's login is the user's own)."""
    if not OWNERS.private:
        return None
    return oauth_token.token if oauth_token is not None else False


WORK = work_folder()
# Model folders a visitor may open: the embedded model's folder and the app's own runs (not the
# uploads beside them: those are visitors' files). More can be added for a local studio with
# STUDIO_MODEL_ROOTS (folders separated by os.pathsep). Which runs are whose: OWNERS.
POLICY = studio_policy(WORK, os.environ.get("STUDIO_MODEL_ROOTS", ""))
OWNERS = Owners(WORK, POLICY, private=ON_SPACE)
# The next run's training process waits ready, its imports done (finetune/workers.py): the first
# step shows seconds sooner after the click. STUDIO_WARM_WORKER=0 saves its memory (about 0.5 GB).
WARM_WORKER = os.environ.get("STUDIO_WARM_WORKER", "1") != "0"
QUEUE = TrainingQueue(lambda on_end: TrainingJob(WORK / "runs", policy=POLICY, describe=portable_command,
                                                 on_end=on_end, warm=WARM_WORKER))
JOB = QUEUE.job
MODELS = ModelCache(max_models=3, policy=POLICY)  # base and tuned side by side, plus one being looked at
# The default Hub model's files are fetched in the background when the Hub answers, so the first
# visitor does not wait for them (the Future: its DownloadPlan, or the error, logged).
PREFETCH = hubmodels.prefetch(HUB_CHOICE.model) if HUB_CHOICE.reason == hubmodels.HUB_REACHABLE else None
SCRATCH = "scratch"                # base-model choice meaning "a new model from scratch"
EXAMPLE_SENTENCE = "これはペンです。これはリンゴです。"
POLL_SECONDS = 1.0                 # how often an open page asks for the training status

# Retention (on a Space only: a local user's files are theirs to delete).
RETENTION_HOURS = float(os.environ.get("STUDIO_RETENTION_HOURS", "24"))  # anonymous visitors' files
MAX_DISK_GB = float(os.environ.get("STUDIO_MAX_DISK_GB", "20"))  # then the oldest deletable go first
SWEEP_SECONDS = 600                # how often the sweeper looks (it sleeps in between)


def sweep_now(now: float | None = None) -> list[Path]:
    """Delete anonymous visitors' expired files, then the oldest deletable ones while the work
    folder is over its limit; never what a running or waiting job needs. The deleted paths."""
    if not OWNERS.private:
        return []
    gone = sweep(WORK, time.time() if now is None else now, RETENTION_HOURS * 3600, MAX_DISK_GB * 1e9,
                 keep=QUEUE.in_use())
    if gone:
        log.info("retention: deleted %d old uploads, runs or zips", len(gone))
    return gone


def start_sweeper() -> threading.Event:
    """Sweep now and every SWEEP_SECONDS in a thread that sleeps in between; set the returned event
    to stop it."""
    stop = threading.Event()

    def loop():
        while True:
            try:
                sweep_now()
            except OSError as err:  # a full or read-only disk must not end the sweeper
                log.warning("retention sweep failed: %s", err)
            if stop.wait(SWEEP_SECONDS):
                return

    threading.Thread(target=loop, name="retention", daemon=True).start()
    return stop


def browser_secret() -> str:
    """The key gr.BrowserState encrypts the page's session key with: fixed for this work folder,
    so a session key stored in a browser still reads after a restart."""
    return hmac.new(OWNERS.secret, b"browser-state", hashlib.sha256).hexdigest()[:32]
