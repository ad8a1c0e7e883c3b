"""The experiment scripts' progress line: where the run is and a bar of the round's steps.

    round 2 of 3, replicate 1 of 2 [=========>..........] 120/400 steps, ETA 0:12

It is drawn in place (one terminal line, redrawn with a carriage return) and only when
its stream is a terminal: redirected or captured output gets nothing extra. A line
printed through `ProgressBar.print_line` first clears the bar, so the two never share a
line. Rounds and replicates are counted from 1 here ("round 1 of 3" is the run's round 0).
"""

import dataclasses
import shutil
import sys
import time
from typing import Callable, Optional, TextIO

BAR_WIDTH = 30  # at most; narrower when the terminal is
REDRAW_SECONDS = 0.1  # redraws at most this often; the last step of a round always shows


@dataclasses.dataclass(frozen=True)
class Position:
    """Where one fit of a branch sits in the experiment: its rounds and its replicate."""

    rounds: int  # rounds the branch trains for this replicate
    replicate: int  # from 0
    replicates: int

    def label(self, round_index: int) -> str:
        """'round r of n, replicate i of k' for the run's round `round_index` (from 0)."""
        return (
            f"round {round_index + 1} of {self.rounds}, replicate {self.replicate + 1} of {self.replicates}"
        )


def is_terminal(stream) -> bool:
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty())


def format_duration(seconds: float) -> str:
    """0:07, 12:34 or 1:02:03."""
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def bar(done: int, total: int, width: int) -> str:
    """[=====>....] of `width` characters between the brackets."""
    filled = width * done // total if total else width
    arrow = ">" if filled < width else ""
    return "[" + "=" * filled + arrow + "." * (width - filled - len(arrow)) + "]"


def bar_text(label: str, done: int, total: int, eta_seconds: Optional[float], columns: int) -> str:
    """The progress line, fitting in `columns` (the bar narrows first, then the line is cut):
    a line that wraps could not be redrawn in place."""
    eta = "" if eta_seconds is None else f", ETA {format_duration(eta_seconds)}"
    counts = f"{done}/{total} steps{eta}"
    width = min(BAR_WIDTH, columns - len(label) - len(counts) - 4)  # 4: two spaces, two brackets
    if width < 5:
        return f"{label} {counts}"[:columns]
    return f"{label} {bar(done, total, width)} {counts}"


class ProgressBar:
    """One round's bar on `stream` (default stdout), drawn only if `enabled` and the stream is a terminal."""

    def __init__(
        self,
        stream: Optional[TextIO] = None,
        enabled: bool = True,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.stream = sys.stdout if stream is None else stream
        self.enabled = enabled and is_terminal(self.stream)
        self.clock = clock
        self.active = False
        self._shown = 0  # characters of the bar now on the line
        self._label, self._total = "", 0
        self._start_time = self._start_done = self._drawn_at = 0.0

    def start(self, label: str, total: int, done: int = 0) -> None:
        """Begins a round of `total` steps; `done` were trained before (a resumed round)."""
        if not self.enabled:
            return
        self.active = True
        self._label, self._total = label, total
        self._start_time, self._start_done = self.clock(), done
        self._draw(done)

    def update(self, done: int) -> None:
        if not self.active:
            return
        now = self.clock()
        if not self._shown or now - self._drawn_at >= REDRAW_SECONDS or done >= self._total:
            self._draw(done)

    def finish(self) -> None:
        """Clears the bar from its line."""
        if self.active:
            self._clear()
            self.active = False

    def print_line(self, text: str) -> None:
        """Prints `text` on a line of its own; an active bar reappears below it at its next update."""
        self._clear()
        print(text, file=self.stream, flush=True)
        self._shown = 0

    def _eta(self, done: int) -> Optional[float]:
        """From this fit's pace: steps trained before a resume took no time here."""
        trained, elapsed = done - self._start_done, self.clock() - self._start_time
        if trained <= 0 or elapsed <= 0:
            return None
        return (self._total - done) * elapsed / trained

    def _draw(self, done: int) -> None:
        columns = shutil.get_terminal_size().columns - 1  # the cursor's column stays on the line
        text = bar_text(self._label, done, self._total, self._eta(done), columns)
        padding = " " * max(0, self._shown - len(text))  # covers a longer previous bar
        self.stream.write("\r" + text + padding)
        self.stream.flush()
        self._shown = len(text)
        self._drawn_at = self.clock()

    def _clear(self) -> None:
        if self._shown:
            self.stream.write("\r" + " " * self._shown + "\r")
            self._shown = 0
