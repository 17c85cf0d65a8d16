"""One training job at a time, run in a child process and followed through its progress.jsonl.

A front end (the studio, a script) calls `start(settings)`, polls `status()` and may `cancel()`.
The job does not belong to the request that started it: closing the page that started it leaves it
running. Which visitor may see or stop it is the front end's business (studio/queue.py keeps a
line of visitors' jobs and starts them here one after another). Nothing here imports gradio.

While a job trains, its thread and its training process hold a lock on the run folder's
.training.lock (flock, so the operating system lets go of it when they end, however they end). A run whose progress.jsonl
began but never ended, and whose lock nobody holds, was interrupted (the app was restarted or
killed): `interrupted_runs` finds those, and `TrainingJob.resume` continues one from its last
checkpoint with the settings it was started with.
"""
from __future__ import annotations

import copy
import json
import logging
import shlex
import subprocess
import threading
import time
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Callable

try:
    import fcntl
except ImportError:  # Windows: a run is known to be alive only in the process training it
    fcntl = None

from .priority import ThreadLauncher
from .workers import SpareWorker, WorkerProcess
from .models import EMBEDDED_MODEL, ModelPolicy
from .errors import FinetuneError
from .lora import LoraSettings
from .scratch import ModelShape
from .train import CONFIG_FILE, METRICS_FILE, PROGRESS_FILE, STOP_FILE, TrainSettings, last_checkpoint, \
    settings_from_run

log = logging.getLogger(__name__)

FINISHED = ("done", "stopped", "error")
LOCK_FILE = ".training.lock"
LOG_LINES = 200  # status() keeps the newest lines only: a long run must not grow every poll
PACKAGE_ROOT = Path(__file__).resolve().parent.parent


class JobBusy(FinetuneError):
    """A training job is already running in this process."""


@dataclass
class JobStatus:
    """What a UI shows about the current (or last) job, derived from its progress.jsonl."""
    state: str = "idle"          # idle, queued (waiting for its turn), running, stopping, done, stopped, error
    out: str = ""                # the run's output folder
    model: str = ""              # the base model ("scratch" for a new model)
    method: str = ""
    command: str = ""            # the equivalent `python -m finetune …` command
    step: int = 0
    max_steps: int = 0
    eta_seconds: float | None = None
    tokens_per_second: float | None = None
    train_loss: list[list[float]] = field(default_factory=list)     # [step, loss] pairs
    heldout_loss: list[list[float]] = field(default_factory=list)   # [step, loss] pairs, step 0 = before
    log: list[str] = field(default_factory=list)
    metrics: dict | None = None  # metrics.json once the run is saved
    error: str = ""
    error_kind: str = ""         # the exception's class name, for a translated message
    events: int = 0              # lines read so far; a poller can skip redrawing when unchanged
    position: int = 0            # queued: its place in the line (1 = next); 0 otherwise
    wait_seconds: float | None = None  # queued: about how long until it starts (None: not known yet)

    @property
    def running(self) -> bool:
        return self.state in ("running", "stopping")

    @property
    def fraction(self) -> float:
        if self.state in ("done", "stopped"):
            return 1.0
        return min(1.0, self.step / self.max_steps) if self.max_steps else 0.0

    def to_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)} | {"fraction": round(self.fraction, 4)}


def read_events(path: Path) -> list[dict]:
    """The events of a progress.jsonl; a last line still being written is skipped."""
    if not path.is_file():
        return []
    events = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return events


def event_line(e: dict) -> str | None:
    """One human-readable log line per event (the CLI prints the same facts)."""
    kind = e["event"]
    if kind in ("start", "resume"):
        return (f"{kind}: {portable_model(e['model'])} ({e['method']}) on {e['device']}/{e['precision']}, "
                f"{e['train_tokens']} training tokens, {e['heldout_tokens']} held out, {e['max_steps']} steps")
    if kind == "step":
        return (f"step {e['step']}/{e['max_steps']}  loss {e['loss']:.4f}  "
                f"{e['tokens_per_second']:.0f} tok/s  ETA {e['eta_seconds']:.0f}s")
    if kind == "eval":
        return f"step {e['step']}  held-out loss {e['heldout_loss']:.4f}  perplexity {e['heldout_perplexity']:.2f}"
    if kind in ("done", "stopped"):
        return (f"{kind}: held-out perplexity {e['heldout_perplexity_before']:.2f} -> "
                f"{e['heldout_perplexity_after']:.2f} after {e['steps']} steps ({e['seconds']} s)")
    if kind == "error":
        return f"error: {e['message']}"
    if kind == "memory":
        return f"memory: {e['message']}"
    return None


def status_from_events(events: list[dict], status: JobStatus) -> JobStatus:
    """Fill `status` from a run's events, oldest first."""
    for e in events:
        kind = e["event"]
        if kind in ("start", "resume"):
            status.model, status.method = e["model"], e["method"]
            status.max_steps = e["max_steps"]
        elif kind == "step":
            status.step, status.max_steps = e["step"], e["max_steps"]
            status.eta_seconds, status.tokens_per_second = e["eta_seconds"], e["tokens_per_second"]
            status.train_loss.append([e["step"], e["loss"]])
        elif kind == "eval":
            status.heldout_loss.append([e["step"], e["heldout_loss"]])
        elif kind in ("done", "stopped"):
            status.state, status.step, status.eta_seconds = kind, e["steps"], 0.0
        elif kind == "error":
            status.state, status.error, status.error_kind = "error", e["message"], e.get("kind", "")
        line = event_line(e)
        if line:
            status.log.append(line)
    status.log = status.log[-LOG_LINES:]
    status.events = len(events)
    return status


def command_line(settings: TrainSettings, shape: ModelShape | None = None) -> str:
    """The `python -m finetune train …` (or `scratch …`) command that runs the same job. Flags at
    their default values are left out."""
    defaults = TrainSettings()
    if settings.resume:
        return shlex.join(["python", "-m", "finetune", "train", "--resume", settings.out or "OUT"])
    args = ["python", "-m", "finetune", "scratch" if shape else "train"]
    if not shape:
        args += ["--model", settings.model]
        if settings.method != defaults.method:
            args += ["--method", settings.method]
    args += ["--data", *(settings.data or ["DATA"]), "--out", settings.out or "OUT", *settings.reading.flags()]
    if settings.max_steps > 0:
        args += ["--max-steps", settings.max_steps]
    elif settings.epochs != defaults.epochs:
        args += ["--epochs", settings.epochs]
    for name in ("block_size", "batch_size", "micro_batch_size", "grad_accum", "gradient_checkpointing",
                 "fused_loss", "lr", "heldout", "seed", "device", "precision", "eval_steps", "save_steps",
                 "warmup_steps", "dropout", "compile"):
        value = getattr(settings, name)
        if value != getattr(defaults, name):
            args += ["--" + name.replace("_", "-"), value]
    if settings.method in ("lora", "qlora") and not shape:
        for name in ("r", "alpha", "dropout"):
            value = getattr(settings.lora, name)
            if value != getattr(LoraSettings(), name):
                args += [f"--lora-{name}", value]
        if settings.lora.targets:
            args += ["--lora-targets", ",".join(settings.lora.targets)]
    if shape:
        for name in ("vocab_size", "layers", "width", "heads", "context"):
            value = getattr(shape, name)
            if value != getattr(ModelShape(), name):
                args += ["--" + name.replace("_", "-"), value]
    return " ".join(shlex.quote(str(a)) for a in args)


PORTABLE_DATA = "my-data/"   # where the shown command expects the visitor's own copy of their text


def portable_model(name: str) -> str:
    """A model as someone else can name it on their own machine: a Hub id as it is, the embedded
    model by its place in a checkout of this project, any other folder by its name (a run's ZIP
    unpacks to a folder of that name)."""
    if not name or not (Path(name).is_dir() or name.startswith(("/", ".", "~")) or name.count("/") > 1):
        return name
    path = Path(name).expanduser().resolve()
    if path == Path(EMBEDDED_MODEL).resolve():
        return path.relative_to(PACKAGE_ROOT).as_posix()
    return path.name


def portable_command(settings: TrainSettings, shape: ModelShape | None = None) -> str:
    """command_line without this machine's paths: the data as my-data/, models as `portable_model`
    names them, the output as runs/<run name>. What a shared front end shows its visitors."""
    shown = copy.deepcopy(settings)
    shown.data = [PORTABLE_DATA] if settings.data else []
    shown.model = portable_model(settings.model)
    shown.out = f"runs/{Path(settings.out).name}" if settings.out else ""
    return command_line(shown, shape)


def run_folder_name() -> str:
    return time.strftime("run-%Y%m%d-%H%M%S")


def finished_runs(runs_dir: str | Path) -> list[Path]:
    """Output folders under `runs_dir` that hold a saved model (metrics.json), newest first."""
    runs_dir = Path(runs_dir)
    if not runs_dir.is_dir():
        return []
    done = [p.parent for p in runs_dir.glob(f"*/{METRICS_FILE}")]
    return sorted(done, key=lambda p: (p / METRICS_FILE).stat().st_mtime, reverse=True)


class WorkerFailed(FinetuneError):
    """The training process ended without a reply (a crash, a kill)."""


def run_worker(settings: TrainSettings, shape: ModelShape | None, stop: threading.Event, lock,
               worker: WorkerProcess) -> dict:
    """Train in `worker`, a child process (finetune/worker.py), and wait for its reply. The child has
    its own interpreter lock, so the front end's requests cannot hold up its steps, and the CPU
    priority of the launcher's thread, kept above the requests'. It is given the run folder's lock,
    and the stop flag reaches it as the run's STOP file."""
    try:
        spec = json.dumps({"settings": asdict(settings), "shape": asdict(shape) if shape else None})
        try:
            worker.hand_over(lock, spec)
        except OSError as err:  # it died while waiting for a run (killed, out of memory)
            raise WorkerFailed(f"the training process could not be given its run: {err}") from err
        while not ended(worker.process, 0.5):
            if stop.is_set():
                (Path(settings.out) / STOP_FILE).touch()  # again until seen: a new run clears it first
        if not worker.reply_file.is_file():
            tail = worker.output.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-15:]
            raise WorkerFailed(f"the training process ended with code {worker.process.returncode}:\n"
                               + "\n".join(tail))
        return json.loads(worker.reply_file.read_text(encoding="utf-8"))
    finally:
        worker.discard()


def ended(process: subprocess.Popen, timeout: float) -> bool:
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        return False
    return True


def lock_run(folder: Path):
    """Lock `folder` for training: the lock lasts while the returned file stays open, and ends with
    the process however it ends. JobBusy when another process is training there."""
    folder.mkdir(parents=True, exist_ok=True)
    handle = open(folder / LOCK_FILE, "a")
    if fcntl is not None:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise JobBusy(f"another process is training in {folder}") from None
    return handle


def is_training(folder: Path) -> bool:
    """Does a live process (this one included) hold the training lock of `folder`?"""
    if fcntl is None or not (folder / LOCK_FILE).is_file():
        return False
    with open(folder / LOCK_FILE, "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        fcntl.flock(handle, fcntl.LOCK_UN)
    return False


def never_ended(events: list[dict]) -> bool:
    """Did the log begin (start or resume) without a done/stopped/error event after it?"""
    begun = False
    for e in events:
        if e["event"] in ("start", "resume"):
            begun = True
        elif e["event"] in FINISHED:
            begun = False
    return begun


@dataclass
class InterruptedRun:
    """A run that began and never ended, and that no live process is training."""
    folder: Path
    step: int                  # the last step it logged
    max_steps: int
    checkpoint: str | None     # where a resume starts; None: it died before its first checkpoint
    from_scratch: bool         # its new tokenizer and initial model were temporary: gone

    @property
    def resumable(self) -> bool:
        return self.checkpoint is not None and not self.from_scratch

    @property
    def why_not_resumable(self) -> str:
        if self.from_scratch:
            return (f"{self.folder} was trained from scratch: its new tokenizer and initial model were "
                    "temporary and are gone, so it cannot be resumed; start it again")
        return (f"{self.folder} was interrupted at step {self.step}, before its first checkpoint was "
                "written: there is nothing to resume from; start it again")


def interrupted_run(folder: Path) -> InterruptedRun | None:
    """`folder` as an interrupted run, or None when it is finished, alive or not a run."""
    events = read_events(folder / PROGRESS_FILE)
    if not never_ended(events) or is_training(folder):
        return None
    steps = [e["step"] for e in events if e["event"] == "step"]
    begun = [e for e in events if e["event"] in ("start", "resume")]
    config = folder / CONFIG_FILE
    base = json.loads(config.read_text(encoding="utf-8")).get("base_model") if config.is_file() else None
    return InterruptedRun(folder, steps[-1] if steps else 0, begun[-1].get("max_steps", 0),
                          last_checkpoint(folder), base == "scratch")


def interrupted_runs(runs_dir: str | Path) -> list[InterruptedRun]:
    """The interrupted runs under `runs_dir`, the most recently active first."""
    logs = sorted(Path(runs_dir).glob(f"*/{PROGRESS_FILE}"), key=lambda p: p.stat().st_mtime, reverse=True)
    return [run for run in map(interrupted_run, (p.parent for p in logs)) if run is not None]


class TrainingJob:
    """The one training job of this process. Every method is safe to call from any thread.

    `describe(settings, shape)` gives the command shown for a run (the front end may hide its own
    paths); `on_end()` is called from the job's thread once a run has ended, however it ended.
    With `warm`, the next run's process is started ahead and waits with its imports done
    (finetune/workers.py): a front end's first step comes seconds sooner after the click."""

    def __init__(self, runs_dir: str | Path, policy: ModelPolicy | None = None,
                 describe: Callable[[TrainSettings, ModelShape | None], str] = command_line,
                 on_end: Callable[[], None] | None = None, warm: bool = False):
        self.runs_dir = Path(runs_dir)
        self.policy = policy                          # which base models this front end may load
        self.describe = describe
        self.on_end = on_end
        self.lock = threading.Lock()
        self.thread: threading.Thread | None = None
        # Training threads come from a thread made now, so they keep this priority even when the
        # request thread that starts them has yielded the CPU (finetune/priority.py).
        self.launcher = ThreadLauncher()
        self.workers = SpareWorker(self.launcher, warm=warm)
        self.stop = threading.Event()
        self.out: Path | None = None
        self.command = ""
        self.failure: tuple[str, str] | None = None   # (message, kind) of an error raised before logging began
        self.result: dict | None = None               # the metrics of the last finished run

    def start(self, settings: TrainSettings, shape: ModelShape | None = None,
              runs_dir: str | Path | None = None) -> JobStatus:
        """Start training in a child process, watched by a background thread: `scratch` when `shape`
        is given, else fine-tuning `settings.model`. An empty `settings.out` gets a new folder under
        `runs_dir` (default: the job's runs_dir)."""
        if self.policy and shape is None:
            self.policy.check(settings.model)
            self.policy.check_weights(settings.model)
        with self.lock:
            if self.busy():
                raise JobBusy(f"a training run is already in progress ({self.out}); "
                              "wait for it to finish or cancel it first")
            if not settings.out:
                settings.out = str(self.free_folder(runs_dir))
            lock = lock_run(Path(settings.out))
            self.out = Path(settings.out)
            self.command = self.describe(settings, shape)
            self.stop = threading.Event()
            self.failure, self.result = None, None
            self.thread = self.launcher.start(self.run, (settings, shape, self.stop, lock), name="training")
        return self.status()

    def busy(self) -> bool:
        """Whether a run is still going. One whose log has ended is let finish first: its process
        may still be exiting for a moment after writing its last event."""
        if self.thread is None or not self.thread.is_alive():
            return False
        events = read_events(self.out / PROGRESS_FILE) if self.out else []
        if events and events[-1].get("event") in FINISHED:
            self.thread.join(timeout=30)
        return self.thread.is_alive()

    def free_folder(self, runs_dir: str | Path | None = None) -> Path:
        """A new run folder in `runs_dir` (default: the job's); a second start within the same second
        gets a suffix."""
        base = Path(runs_dir or self.runs_dir) / run_folder_name()
        folder, n = base, 1
        while folder.exists():
            n += 1
            folder = base.with_name(f"{base.name}-{n}")
        return folder

    def run(self, settings: TrainSettings, shape: ModelShape | None, stop: threading.Event, lock):
        try:
            reply = run_worker(settings, shape, stop, lock, self.workers.take())
        except OSError as err:   # no process could be started (out of memory, too many processes)
            log.error("training could not start: %s", err)
            self.failure = (f"could not start the training process: {err}", type(err).__name__)
        except WorkerFailed as err:  # a bug, not a user error: keep its output in the server log
            log.error("training failed: %s", err)
            self.failure = (f"internal error: {err}", type(err).__name__)
        else:
            if "error" in reply:
                self.failure = (reply["error"], reply["kind"])
            else:
                self.result = reply["metrics"]
        finally:
            lock.close()  # the run folder is free: a later app sees it as finished or interrupted
            self.workers.prepare()  # the next run's process, now that this one no longer needs the CPU
            if self.on_end is not None:
                self.on_end()

    def interrupted(self, runs_dirs=None) -> list[InterruptedRun]:
        """The interrupted runs of `runs_dirs` (default: the job's runs_dir), the most recently
        active first; never the one this job is training."""
        with self.lock:
            current = self.out if self.thread is not None and self.thread.is_alive() else None
        runs = [run for folder in (runs_dirs or [self.runs_dir]) for run in interrupted_runs(folder)]
        runs.sort(key=lambda run: (run.folder / PROGRESS_FILE).stat().st_mtime, reverse=True)
        return [run for run in runs if current is None or run.folder != current]

    def resumable_run(self, folder: str | Path = "", runs_dirs=None) -> InterruptedRun:
        """The resumable interrupted run `folder` of `runs_dirs` (default: the job's runs_dir; the
        newest one when `folder` is empty); FinetuneError saying why when there is none."""
        runs = self.interrupted(runs_dirs)
        if not folder:
            resumable = [run for run in runs if run.resumable]
            if not resumable:
                raise FinetuneError("there is no interrupted run to resume")
            return resumable[0]
        run = next((run for run in runs if run.folder.resolve() == Path(folder).resolve()), None)
        if run is None:
            raise FinetuneError(f"{folder} is not an interrupted run of this app (finished, running, or elsewhere)")
        if not run.resumable:
            raise FinetuneError(run.why_not_resumable)
        return run

    def resume(self, folder: str | Path = "") -> JobStatus:
        """Continue an interrupted run from its last checkpoint, with the settings it was started
        with (the newest resumable one when `folder` is empty). Started like `start`."""
        run = self.resumable_run(folder)
        settings = settings_from_run(run.folder)
        settings.out = str(run.folder)
        return self.start(settings)

    def cancel(self) -> JobStatus:
        """Ask the running job to stop after its current step; it then saves what it has learned.
        Both the stop flag and a STOP file are used, so a job in another process stops too."""
        with self.lock:
            if self.thread is not None and self.thread.is_alive():
                self.stop.set()
                if self.out is not None and self.out.is_dir():
                    (self.out / STOP_FILE).touch()
        return self.status()

    def status(self) -> JobStatus:
        with self.lock:
            out, thread, failure, command = self.out, self.thread, self.failure, self.command
            stopping = self.stop.is_set()
        if out is None:
            return JobStatus()
        status = status_from_events(read_events(out / PROGRESS_FILE),
                                    JobStatus(state="running", out=str(out), command=command))
        alive = thread is not None and thread.is_alive()
        if alive and stopping and status.state == "running":
            status.state = "stopping"
        if not alive and status.state in ("running", "stopping"):
            # The thread ended without a final event: it failed before progress.jsonl was begun.
            status.state = "error"
            status.error, status.error_kind = failure or ("training ended without a result", "")
        if status.state in ("done", "stopped"):
            metrics_file = out / METRICS_FILE
            status.metrics = json.loads(metrics_file.read_text(encoding="utf-8")) if metrics_file.is_file() else None
        return status

    def wait(self, timeout: float | None = None) -> JobStatus:
        """Block until the job ends (or `timeout` seconds pass); the status then."""
        thread = self.thread
        if thread is not None:
            thread.join(timeout)
        return self.status()
