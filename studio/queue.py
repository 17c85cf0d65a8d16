"""A fair line for the studio's one training job: one run trains at a time, the others wait in order.

Every job belongs to an owner (studio/owners.py), and each owner has at most one job, training or
waiting. A start joins the end of the line when the job is busy; the line holds at most `size`
jobs. An owner sees their place and a wait estimate, and cancelling a waiting job leaves the line.
When a run ends (finished, failed or cancelled) the next one starts from the job's own thread
signal, without any polling: an idle studio spends no CPU here. Nothing here imports gradio.
"""
from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from pathlib import Path

from finetune.errors import FinetuneError
from finetune.runner import JobBusy, JobStatus, TrainingJob
from finetune.scratch import ModelShape
from finetune.train import TrainSettings

LINE_SIZE = 8            # jobs that may wait: beyond that a start is refused ("come back later")
REMEMBERED = 512         # owners whose last finished job's status is kept (the oldest are forgotten)
RECENT_RUNS = 5          # finished runs whose durations make the wait estimate


class LineFull(JobBusy):
    """Every place in the line is taken."""


@dataclass
class Ticket:
    """One owner's job: what to train, and where its run folder goes."""
    owner: str                        # the owner's folder name: who may see and cancel it
    settings: TrainSettings
    shape: ModelShape | None = None
    runs_dir: Path | None = None      # where a new run folder is made (settings.out empty)
    data: tuple[Path, ...] = ()       # the staged inputs it reads (kept while it waits or trains)
    joined: float = field(default_factory=time.monotonic)
    started: bool = False             # its run has been started on the job

    def status(self, position: int, wait: float | None) -> JobStatus:
        return JobStatus(state="queued", out=self.settings.out, model=self.settings.model,
                         method=self.settings.method, position=position, wait_seconds=wait)


class TrainingQueue:
    """The running ticket and the waiting line, in front of one TrainingJob (made here, so that its
    end can start the next one)."""

    def __init__(self, make_job, size: int = LINE_SIZE):
        """`make_job(on_end)` returns the TrainingJob to run tickets on, calling `on_end` when a run ends."""
        self.size = size
        self.job: TrainingJob = make_job(self.ended)
        self.lock = threading.Condition()
        self.running: Ticket | None = None
        self.waiting: list[Ticket] = []
        self.finished: OrderedDict[str, JobStatus] = OrderedDict()   # owner -> their last job's final status
        self.durations: deque[float] = deque(maxlen=RECENT_RUNS)
        self.launched: Ticket | None = None   # the ticket whose run the job's thread is training
        self.started_at = 0.0
        # Runs that have ended, as (ticket, its thread), oldest first, for the queue's thread; a
        # (None, None) only wakes it (a start was refused: the next one may go).
        self.ends: deque[tuple[Ticket | None, threading.Thread | None]] = deque()
        threading.Thread(target=self.serve, name="training-queue", daemon=True).start()

    # -- what owners do ------------------------------------------------------------------------
    def submit(self, ticket: Ticket) -> JobStatus:
        """Start `ticket` now when nothing trains, else put it at the end of the line. JobBusy when
        its owner already has a job; LineFull when the line is full."""
        self.job.busy()   # a run whose log has ended is let finish first: its process may be exiting
        with self.lock:
            self.settle()
            if self.owner_job(ticket.owner) is not None:
                raise JobBusy("a training run of yours is already in progress or waiting; "
                              "wait for it to finish or cancel it first")
            if self.running is None and not self.waiting:
                self.running = ticket
            elif len(self.waiting) >= self.size:
                raise LineFull(f"{len(self.waiting)} runs are already waiting to train; try again later")
            else:
                self.waiting.append(ticket)
                return self.queued_status(len(self.waiting))
        return self.launch(ticket)

    def cancel(self, owners) -> JobStatus:
        """Stop the owner's training run (it saves what it has learned) or take their job out of the
        line. Another owner's job is never touched."""
        with self.lock:
            self.settle()
            running = self.running is not None and self.running.owner in owners
            self.waiting = [t for t in self.waiting if t.owner not in owners]
        if running:
            self.job.cancel()
        return self.status(owners)

    def status(self, owners) -> JobStatus:
        """The owner's job: training, waiting (with place and estimate), or their last one."""
        with self.lock:
            self.settle()
            if self.running is not None and self.running.owner in owners:
                running = True
            else:
                running = False
                for place, ticket in enumerate(self.waiting, 1):
                    if ticket.owner in owners:
                        return self.queued_status(place)
                last = next((self.finished[o] for o in owners if o in self.finished), None)
                if last is not None:
                    return last
        return self.job.status() if running else JobStatus()

    def in_use(self) -> list[Path]:
        """Folders that the running and waiting jobs need: their run folders and their data."""
        with self.lock:
            tickets = ([self.running] if self.running else []) + self.waiting
        paths = [Path(t.settings.out) for t in tickets if t.settings.out]
        return paths + [path for t in tickets for path in t.data]

    def line(self) -> int:
        with self.lock:
            return len(self.waiting)

    # -- inside ----------------------------------------------------------------------------------
    def settle(self):
        """With the lock held: if the running ticket's run has ended and the queue's thread has not
        caught up yet, catch up now. (Someone who waited for their run to end and starts again at
        once must not be told that it is still running.)"""
        ticket, thread = self.running, self.job.thread
        if ticket is not None and ticket.started and thread is not None and not thread.is_alive():
            self.remember(ticket.owner, self.job.status())
            self.running = None
            if self.launched is ticket:
                self.launched = None

    def owner_job(self, owner: str) -> Ticket | None:
        tickets = ([self.running] if self.running else []) + self.waiting
        return next((t for t in tickets if t.owner == owner), None)

    def queued_status(self, place: int) -> JobStatus:
        """The status of the ticket at `place` (1 = next); call with the lock held."""
        return self.waiting[place - 1].status(place, self.wait_estimate(place))

    def wait_estimate(self, place: int) -> float | None:
        """Seconds until the job at `place` starts: what the running run has left, plus a typical
        run for each job ahead. Typical: the recent finished runs; before any has finished, the
        running run's own expected length. None while neither is known."""
        eta = self.job.status().eta_seconds if self.running is not None else None  # from its first steps on
        elapsed = time.monotonic() - self.started_at
        if self.durations:
            typical = sum(self.durations) / len(self.durations)
        elif eta is not None:
            typical = elapsed + eta
        else:
            return None
        left = 0.0
        if self.running is not None:
            left = eta if eta is not None else max(0.0, typical - elapsed)
        return round(left + (place - 1) * typical, 1)

    def launch(self, ticket: Ticket) -> JobStatus:
        """Start `ticket` (it is `self.running`) on the job; a refusal frees the place at once."""
        with self.lock:
            self.launched = ticket        # before the start: a run may end before start() returns
            self.started_at = time.monotonic()
        try:
            status = self.job.start(ticket.settings, ticket.shape, runs_dir=ticket.runs_dir)
        except (FinetuneError, ValueError, OSError) as err:
            with self.lock:
                self.launched = self.running = None
            self.notice(None, None)   # the next one may start
            if isinstance(err, OSError):
                raise FinetuneError(f"could not start training: {err}") from err
            raise
        with self.lock:
            ticket.started = True
        return status

    def ended(self):
        """Called from the job's thread when a run has ended. Which run is noted now, not when the
        queue's thread gets to it: by then `settle` may have let the same owner start another."""
        with self.lock:
            self.notice(self.launched, threading.current_thread())

    def notice(self, done: Ticket | None, thread: threading.Thread | None):
        """Tell the queue's thread that `done`'s run (trained by `thread`) has ended."""
        with self.lock:
            self.ends.append((done, thread))
            self.lock.notify_all()

    def serve(self):
        """The queue's thread: after each run ends, keep how it ended and start the next job."""
        while True:
            with self.lock:
                self.lock.wait_for(lambda: self.ends)
                done, thread = self.ends.popleft()
            if thread is not None and thread is not threading.current_thread():
                thread.join()                   # its thread is ending: the run has let go of its folder
            with self.lock:
                if self.launched is done:
                    self.launched = None
                if done is not None and self.running is done:   # (unless `settle` did this already)
                    self.remember(done.owner, self.job.status())
                    self.running = None
                if self.running is not None or not self.waiting:
                    continue
                ticket = self.running = self.waiting.pop(0)
            try:
                self.launch(ticket)
            except FinetuneError as err:  # e.g. its data was deleted while it waited
                self.remember(ticket.owner, JobStatus(state="error", out=ticket.settings.out, error=str(err),
                                                      error_kind=type(err).__name__))
            except ValueError as err:
                self.remember(ticket.owner, JobStatus(state="error", error=str(err), error_kind="ValueError"))

    def remember(self, owner: str, status: JobStatus):
        if status.state in ("done", "stopped") and status.metrics:
            self.durations.append(float(status.metrics.get("seconds", 0)) or time.monotonic() - self.started_at)
        with self.lock:
            self.finished[owner] = status
            self.finished.move_to_end(owner)
            while len(self.finished) > REMEMBERED:
                self.finished.popitem(last=False)
