"""The studio's line of training jobs (studio/queue.py), on a stand-in job whose runs end when the
test says so: first come first served, one job per owner, a bounded line, leaving it, and the next
run starting the moment the one before it ends (cancelled or not)."""
import threading

import pytest

from finetune.runner import JobBusy, JobStatus
from finetune.train import TrainSettings
from studio.queue import LINE_SIZE, LineFull, Ticket, TrainingQueue


class StandInJob:
    """TrainingJob's interface; a run lasts until `finish()` (or, once cancelled, `finish("stopped")`)."""

    def __init__(self, on_end):
        self.on_end = on_end
        self.started: list[TrainSettings] = []
        self.cancelled = 0
        self.thread: threading.Thread | None = None
        self.release = threading.Event()
        self.state = "idle"
        self.eta: float | None = None   # what the running run's log says is left (None: no step yet)

    def start(self, settings, shape=None, runs_dir=None):
        if settings.model == "refused":
            raise JobBusy("refused on purpose")
        self.started.append(settings)
        self.state, self.release = "running", threading.Event()
        self.thread = threading.Thread(target=self.run, args=(self.release,), daemon=True)
        self.thread.start()
        return self.status()

    def run(self, release):
        release.wait(30)
        self.on_end()

    def finish(self, state="done"):
        self.state = state
        self.release.set()

    def cancel(self):
        self.cancelled += 1
        return self.status()

    def status(self):
        current = self.started[-1] if self.started else None
        return JobStatus(state=self.state, model=current.model if current else "",
                         eta_seconds=self.eta if self.state == "running" else None,
                         metrics={"seconds": 60} if self.state == "done" else None)

    def busy(self):
        return self.thread is not None and self.thread.is_alive()

    def wait(self, timeout=None):
        if self.thread is not None:
            self.thread.join(timeout)
        return self.status()


def ticket(owner: str, model: str = "m") -> Ticket:
    return Ticket(owner, TrainSettings(model=model, data=["d"], max_steps=1))


def until(predicate, what: str):
    """Wait (briefly) for the queue's own thread to act."""
    for _ in range(500):
        if predicate():
            return
        threading.Event().wait(0.01)
    raise AssertionError(what)


@pytest.fixture
def line():
    queue = TrainingQueue(StandInJob)
    yield queue
    queue.job.finish()


def test_first_come_first_served_and_the_next_starts_when_a_run_ends(line):
    assert line.submit(ticket("a", "model-a")).state == "running"
    b, c = line.submit(ticket("b", "model-b")), line.submit(ticket("c", "model-c"))
    assert (b.state, b.position, c.position) == ("queued", 1, 2)
    assert line.status(("c",)).position == 2 and line.status(("a",)).state == "running"
    line.job.finish()
    until(lambda: [s.model for s in line.job.started] == ["model-a", "model-b"], "b did not start after a")
    assert line.status(("a",)).state == "done"          # a still sees how its own run ended
    assert line.status(("b",)).state == "running" and line.status(("c",)).position == 1


def test_one_job_per_owner_and_a_bounded_line(line):
    line.submit(ticket("a"))
    with pytest.raises(JobBusy):
        line.submit(ticket("a"))                         # training already
    for n in range(LINE_SIZE):
        line.submit(ticket(f"w{n}"))
    with pytest.raises(JobBusy):
        line.submit(ticket("w3"))                        # waiting already
    with pytest.raises(LineFull):
        line.submit(ticket("late"))
    assert line.line() == LINE_SIZE and line.status(("late",)).state == "idle"


def test_cancel_leaves_the_line_and_touches_only_the_owners_job(line):
    line.submit(ticket("a"))
    line.submit(ticket("b"))
    line.submit(ticket("c"))
    assert line.cancel(("b",)).state == "idle"          # b left the line …
    assert line.job.cancelled == 0                      # … and a's run went on
    assert line.status(("c",)).position == 1
    line.cancel(("nobody",))
    assert line.job.cancelled == 0 and line.status(("a",)).state == "running"


def test_the_running_owners_cancel_frees_the_slot_for_the_next(line):
    line.submit(ticket("a", "model-a"))
    line.submit(ticket("b", "model-b"))
    line.cancel(("a",))
    assert line.job.cancelled == 1
    line.job.finish("stopped")                           # the cancelled run has saved and ended
    until(lambda: len(line.job.started) == 2, "b did not start after a's cancel")
    assert line.job.started[-1].model == "model-b" and line.status(("a",)).state == "stopped"


def test_a_refused_start_lets_the_next_one_go(line):
    line.submit(ticket("a"))
    line.submit(ticket("b", "refused"))
    line.submit(ticket("c", "model-c"))
    line.job.finish()
    until(lambda: line.job.started[-1].model == "model-c", "c did not start after b was refused")
    assert line.status(("b",)).state == "error" and "refused" in line.status(("b",)).error


def test_wait_estimate_comes_from_finished_runs(line):
    line.submit(ticket("a"))
    line.submit(ticket("b"))
    assert line.status(("b",)).wait_seconds is None    # nothing has finished yet: unknown
    line.job.finish()                                    # a took 60 s (its metrics say)
    until(lambda: len(line.job.started) == 2, "b did not start")
    line.submit(ticket("c"))
    line.submit(ticket("d"))
    c, d = line.status(("c",)), line.status(("d",))
    assert c.wait_seconds is not None and 0 < c.wait_seconds <= 60
    assert d.wait_seconds == pytest.approx(c.wait_seconds + 60, abs=1)


def test_before_any_run_has_finished_the_running_runs_own_eta_makes_the_estimate(line):
    line.submit(ticket("a"))
    line.submit(ticket("b"))
    line.submit(ticket("c"))
    assert line.status(("b",)).wait_seconds is None    # a has not logged a step yet
    line.job.eta = 30.0                                  # a's log: 30 s left
    b, c = line.status(("b",)).wait_seconds, line.status(("c",)).wait_seconds
    assert b == 30.0
    assert 30.0 <= c - b <= 31.0                         # one more run as long as a's (elapsed + 30 s)


def test_in_use_names_the_folders_of_running_and_waiting_jobs(line, tmp_path):
    first = ticket("a")
    first.settings.out = str(tmp_path / "runs" / "run-1")
    first.data = (tmp_path / "uploads" / "x",)
    line.submit(first)
    waiting = ticket("b")
    waiting.data = (tmp_path / "uploads" / "y",)
    line.submit(waiting)
    assert set(line.in_use()) == {tmp_path / "runs" / "run-1", tmp_path / "uploads" / "x",
                                  tmp_path / "uploads" / "y"}


def test_starting_again_right_after_the_end_is_not_busy(line):
    """The owner waited for their run to end and starts again before the queue's own thread has
    acted on the end (its news is held back here): the start goes through, the late news of the
    first run leaves the second one alone, and the second run's own end is what the owner then sees.
    (Found by the browser journey: the news was read as the second run's, which then showed
    "running" with an empty log for ever.)"""
    held = []
    told, line.job.on_end = line.job.on_end, lambda: held.append((line.launched, threading.current_thread()))
    line.submit(ticket("a", "first"))
    line.job.finish("stopped")
    line.job.wait()
    line.job.on_end = told
    assert line.submit(ticket("a", "second")).state == "running"
    assert [s.model for s in line.job.started] == ["first", "second"]
    line.notice(*held[0])                                # the late news of the first run's end
    threading.Event().wait(0.2)
    assert line.status(("a",)).state == "running" and len(line.job.started) == 2
    line.job.finish("done")
    until(lambda: line.status(("a",)).state == "done", "the second run's end was not seen")
    assert line.status(("a",)).model == "second"
