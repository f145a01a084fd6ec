"""A tiny progress display on stderr (tqdm is not a dependency): one
rewritten line on a terminal, one line per step otherwise (logs, CI)."""
import sys
import time


def _clock(seconds):
    seconds = int(seconds)
    return f"{seconds // 60}:{seconds % 60:02d}"


class Progress:
    def __init__(self, total, stream=None, enabled=True):
        self.total, self.done = total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.start = time.perf_counter()

    def step(self, label):
        """Announce the step about to run."""
        if not self.enabled:
            return
        elapsed = time.perf_counter() - self.start
        eta = f" eta {_clock(elapsed / self.done * (self.total - self.done))}" if self.done else ""
        line = (f"[{self.done + 1}/{self.total}] {100 * self.done // max(self.total, 1):3d}% "
                f"{_clock(elapsed)}{eta}  {label}")
        if self.tty:
            self.stream.write("\r\033[K" + line[:160])
        else:
            self.stream.write(line + "\n")
        self.stream.flush()
        self.done += 1

    def warn(self, message):
        """A message that must stay visible (e.g. a correctness mismatch)."""
        self.stream.write(("\r\033[K" if self.tty else "") + message + "\n")
        self.stream.flush()

    def close(self):
        if self.enabled:
            end = f"done: {self.total} steps in {_clock(time.perf_counter() - self.start)}"
            self.stream.write(("\r\033[K" if self.tty else "") + end + "\n")
            self.stream.flush()
