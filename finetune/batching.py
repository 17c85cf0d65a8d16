"""Many visitors generating at once: one worker thread decodes every running request of a model
together, one forward pass per token for all of them (finetune.generate.Batch), with streaming kept.

On a small CPU a forward pass of a GPT-2 costs about the same for one row as for a dozen (reading
the weights dominates), so twenty visitors decoded side by side take little longer than one.
A request joins its model's batch between two steps (its prompt is prefilled, its cache merged in)
and leaves it as soon as it is done (EOS, its token budget, the model's context), stopped (the
caller closed the stream: Stop button, closed page) or failed. Different models decode as separate
batches, step after step in turn. Each request keeps its own settings and its own seeded generator,
so its text is the one `finetune.generate.generate` gives alone.

The process shares one `BATCHER`; its worker thread starts with it (import time) and sleeps while no
one generates. Errors in the worker reach the callers of the requests it was serving.
"""
from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import torch

from .generate import Batch, GenerationSettings, Row, TextPieces, new_row
from .priority import REQUEST_NICENESS, yield_cpu_to_training

log = logging.getLogger(__name__)

# Rows decoded together per model. A step's time grows slowly with rows while the weights' reading
# dominates and about linearly past that (scripts/load_test.py --micro); 32 covers a crowd of 20-30
# visitors in one batch, and the requests beyond it wait for a row to free up.
MAX_BATCH = 32
# How long an idle worker waits after a first request for others arriving with it, so that they share
# one prefill. Short next to one forward pass of a batch (tens of ms on 2 cores), so a lone visitor
# hardly notices; a later arrival is not lost either: it joins at the next step.
GATHER_SECONDS = 0.02
DONE = object()  # the end of a request's token queue


@dataclass(eq=False)
class Request(Row):
    """A row plus what its caller needs: the model it belongs to, a queue of new tokens (then DONE
    or the exception that ended it), and events for stopping and for having left the batch."""
    model: object = None
    outbox: queue.SimpleQueue = field(default_factory=queue.SimpleQueue)
    given: int = 0                     # tokens already put in the outbox
    stopped: threading.Event = field(default_factory=threading.Event)  # the caller is gone
    left: threading.Event = field(default_factory=threading.Event)     # out of every batch and queue

    def flush(self):
        """Hand the caller the tokens produced since the last flush, and DONE once finished."""
        if len(self.tokens) > self.given:
            self.outbox.put(self.tokens[self.given:])
            self.given = len(self.tokens)
        if self.done:
            self.end(DONE)

    def end(self, outcome):
        self.outbox.put(outcome)
        self.left.set()


class GenerationBatcher:
    """Gathers concurrent generation requests into per-model batches decoded by one worker thread.
    `stream` is safe to call from any number of threads."""

    def __init__(self, max_batch: int = MAX_BATCH, gather_seconds: float = GATHER_SECONDS,
                 niceness: int | None = None):
        if not 1 <= max_batch <= 256:
            raise ValueError(f"max batch must be between 1 and 256, got {max_batch}")
        if not 0 <= gather_seconds <= 1:
            raise ValueError(f"the gather window must be between 0 and 1 s, got {gather_seconds}")
        self.max_batch = max_batch
        self.gather_seconds = gather_seconds
        self.niceness = niceness           # the worker's CPU niceness (None: the creating thread's)
        self.changed = threading.Condition()
        self.waiting: list[Request] = []   # guarded by `changed`
        self.rows = 0                      # rows in batches, guarded by `changed`
        self.batches: dict[int, Batch] = {}  # id(model) -> its batch; the worker's own
        self.failure: BaseException | None = None
        self.worker = threading.Thread(target=self.serve, name="generation-batcher", daemon=True)
        self.worker.start()

    # -- the callers' side ----------------------------------------------------------------------

    def stream(self, model, tokenizer, prompt: str, settings: GenerationSettings | None = None):
        """Yield the continuation of `prompt` piece by piece, as finetune.generate.stream does, decoded
        alongside every other request for `model`. Closing the generator stops the request at the next
        token and frees its row before close() returns."""
        settings = settings or GenerationSettings()
        request = new_row(model, tokenizer, prompt, settings, row_class=Request)
        request.model = model
        self.submit(request)
        pieces = TextPieces(tokenizer)
        try:
            while (outcome := self.next_outcome(request)) is not DONE:
                if isinstance(outcome, BaseException):
                    raise outcome
                if piece := pieces.add(outcome):
                    yield piece
            if rest := pieces.rest():
                yield rest
        finally:
            self.stop(request)

    def submit(self, request: Request):
        with self.changed:
            self.check_alive()
            self.waiting.append(request)
            self.changed.notify_all()

    def next_outcome(self, request: Request):
        """The request's next list of tokens, DONE, or the exception that ended it."""
        while True:
            try:
                return request.outbox.get(timeout=1.0)
            except queue.Empty:
                self.check_alive()

    def stop(self, request: Request):
        """Take the request out (if it is still in) and wait until its row has left the batch."""
        if request.left.is_set():
            return
        request.stopped.set()
        if threading.current_thread() is self.worker:  # a stream collected by the worker's own GC
            return
        with self.changed:
            if request in self.waiting:
                self.waiting.remove(request)
                request.left.set()
                return
            self.changed.notify_all()
        while not request.left.wait(timeout=1.0) and self.worker.is_alive():
            pass

    def check_alive(self):
        if not self.worker.is_alive():
            raise RuntimeError(f"the generation worker has stopped: {self.failure!r}")

    def running(self) -> tuple[int, int]:
        """(rows being decoded, requests waiting for a row)."""
        with self.changed:
            return self.rows, len(self.waiting)

    # -- the worker -----------------------------------------------------------------------------

    def serve(self):
        if self.niceness is not None:
            yield_cpu_to_training(self.niceness)
        try:
            while True:
                self.serve_once(self.arrivals())
        except BaseException as err:  # beyond one batch's error: the worker ends, loudly
            self.failure = err
            log.error("the generation worker stopped: %r", err, exc_info=err)
            self.fail_everyone(err)

    def arrivals(self) -> dict[int, list[Request]]:
        """The waiting requests that have a row now, by model; blocks while there is nothing to do."""
        with self.changed:
            while not self.waiting and not self.batches:
                self.changed.wait()
            if not self.batches:
                deadline = time.monotonic() + self.gather_seconds
                while len(self.waiting) < self.max_batch and (wait := deadline - time.monotonic()) > 0:
                    self.changed.wait(wait)
            taken: dict[int, list[Request]] = {}
            for request in list(self.waiting):
                key = id(request.model)
                batch = self.batches.get(key)
                rows = (len(batch.rows) if batch else 0) + len(taken.get(key, []))
                if rows < self.max_batch and (batch is None or batch.accepts_newcomers()):
                    taken.setdefault(key, []).append(request)
                    self.waiting.remove(request)
            return taken

    def serve_once(self, arrivals: dict[int, list[Request]]):
        """One step of every running batch, then the newcomers' prefill (their first token)."""
        for key in list(self.batches) + [k for k in arrivals if k not in self.batches]:
            self.serve_model(key, arrivals.get(key, []))

    def serve_model(self, key: int, arrivals: list[Request]):
        batch = self.batches.get(key)
        newcomers = [r for r in arrivals if not r.stopped.is_set()]
        gone = [r for r in arrivals if r.stopped.is_set()]
        served = (batch.rows if batch else []) + newcomers
        failure = None
        try:
            with torch.inference_mode():
                if batch is None:
                    batch = Batch(newcomers[0].model) if newcomers else None
                else:
                    gone += batch.remove(lambda row: row.stopped.is_set())
                    batch.step()
                if newcomers:
                    batch.admit(newcomers)
        except BaseException as err:  # this model's requests end with it; the worker serves on (Exception)
            log.warning("generation failed for %d request(s): %r", len(served), err)
            failure, batch = err, None
        if batch is not None and batch.rows:
            self.batches[key] = batch
        else:
            self.batches.pop(key, None)
        self.count_rows()
        for request in gone:
            request.left.set()
        for request in (r for r in served if r not in gone):
            if failure is None:
                request.flush()
            else:
                request.end(failure)
        if failure is not None and not isinstance(failure, Exception):
            raise failure  # not a batch's problem (the process is ending, or worse): the worker stops

    def count_rows(self):
        with self.changed:
            self.rows = sum(len(batch.rows) for batch in self.batches.values())

    def fail_everyone(self, err: BaseException):
        with self.changed:
            waiting, self.waiting = self.waiting, []
        for request in waiting + [row for batch in self.batches.values() for row in batch.rows]:
            request.end(err)
        self.batches.clear()
        self.count_rows()


# The process's one batcher. Its worker lowers itself like the studio's other computing threads, so a
# training run keeps its CPU (finetune/priority.py); it is created at import, from a thread at the
# normal priority, so the niceness can be chosen here rather than inherited from a request thread.
BATCHER = GenerationBatcher(niceness=REQUEST_NICENESS)
