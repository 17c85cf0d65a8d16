"""A progress bar on stderr for long steps of the command line (the studio draws its own).

`ProgressBar` is a `progress(done, total)` callback, as `finetune.data.build_dataset` takes. It stays
silent for small inputs and draws a tqdm bar (tqdm comes with transformers; pinned in requirements.txt)
once the total is large enough for the wait to be noticed.
"""
from __future__ import annotations

import sys

# Characters below which tokenizing takes about a second or less on 2 CPU cores: no bar then.
BAR_MIN_CHARACTERS = 1_000_000
# Seconds between redraws when stderr is not a terminal (a log file): a line every few seconds,
# not one every tenth of a second.
LOG_REDRAW_SECONDS = 5.0


class ProgressBar:
    """A `progress(done, total)` callback drawing a bar on `file` (stderr) once `total` reaches
    `min_total`; `enabled` False keeps it silent. Use it as a context manager so the bar is closed
    even when the step fails."""

    def __init__(self, description: str, unit: str = "char", min_total: int = BAR_MIN_CHARACTERS, file=None,
                 enabled: bool = True):
        self.description = description
        self.unit = unit
        self.min_total = min_total
        self.file = file or sys.stderr
        self.bar = None
        self.finished = not enabled

    def __call__(self, done: int, total: int):
        if self.finished or total < self.min_total:
            return
        if self.bar is None:
            self.bar = self.new_bar(total)
        self.bar.update(done - self.bar.n)
        if done >= total:
            self.close()

    def new_bar(self, total: int):
        from tqdm import tqdm
        terminal = hasattr(self.file, "isatty") and self.file.isatty()
        return tqdm(total=total, desc=self.description, unit=self.unit, unit_scale=True, file=self.file,
                    mininterval=0.1 if terminal else LOG_REDRAW_SECONDS, dynamic_ncols=terminal)

    def close(self):
        if self.bar is not None and not self.finished:
            self.bar.close()
        self.finished = True

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
