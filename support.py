"""Helpers every layer shares: progress, stage timings, plain JSON and the
versions a run records. Nothing here imports anything of ours but
:mod:`.units`-level code may import it."""

import queue
import sys
import threading
import time
from contextlib import contextmanager

import numpy as np


class ProgressBar:
    """Progress on a stream: a one-line bar redrawn in place on a terminal;
    elsewhere (a log file, a pipe) one plain line per tenth of the work or
    per new stage, so that logs stay readable."""

    def __init__(self, stream=None, width=30):
        self.stream = stream or sys.stderr
        self.width = width
        self.last = None
        isatty = getattr(self.stream, "isatty", None)
        self.terminal = bool(isatty and isatty())
        self._logged = (None, -1)

    def __call__(self, fraction, message):
        if self.terminal:
            self._draw(fraction, message)
        else:
            self._log(fraction, message)

    def _draw(self, fraction, message):
        filled = int(round(fraction * self.width))
        line = (
            f"\r[{'#' * filled}{' ' * (self.width - filled)}] "
            f"{fraction:4.0%} {message}"
        )
        if line != self.last:
            self.stream.write(line.ljust(78))
            self.stream.flush()
            self.last = line
        if fraction >= 1.0:
            self.stream.write("\n")

    def _log(self, fraction, message):
        stage, tenth = stage_of(message), int(fraction * 10)
        last_stage, last_tenth = self._logged
        if stage == last_stage and tenth <= last_tenth:
            return
        self._logged = (stage, tenth)
        self.stream.write(f"{fraction:4.0%} {message}\n")
        self.stream.flush()


def stage_of(message):
    """The words of a progress message before its first number: the
    stage it names ("embedded 40 of 100" -> "embedded")."""
    words = []
    for word in str(message).split():
        if any(ch.isdigit() for ch in word):
            break
        words.append(word)
    return " ".join(words)


class Reporter:
    """Forwards ``(fraction, message)`` to the caller's progress callback
    (``True`` draws a bar on stderr); the fraction never moves back."""

    def __init__(self, callback):
        if callback is True:
            callback = ProgressBar()
        self.callback = callback or None
        self.last = 0.0

    def __call__(self, fraction, message):
        self.last = min(max(fraction, self.last), 1.0)
        if self.callback is not None:
            self.callback(self.last, message)

    def part(self, start, stop):
        """A callback ``(fraction, message)`` for a stage that fills
        ``[start, stop]`` of the bar."""
        return lambda f, m: self(start + (stop - start) * f, m)


class Timings:
    """Seconds per named stage."""

    def __init__(self):
        self.seconds = {}
        self.total = None
        self._started = time.time()

    @contextmanager
    def __call__(self, name):
        t = time.time()
        yield
        self.seconds[name] = self.seconds.get(name, 0.0) + time.time() - t

    def finish(self):
        self.total = time.time() - self._started

    def as_dict(self):
        out = {k: round(v, 3) for k, v in self.seconds.items()}
        if self.total is not None:
            out["total"] = round(self.total, 3)
        return out


def to_json(obj):
    """``obj`` with numpy scalars and arrays turned into plain JSON."""
    if isinstance(obj, dict):
        return {str(k): to_json(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_json(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def count_reasons(reasons):
    """Reason -> how many times it occurs, from a dict of id -> reason."""
    counts = {}
    for reason in reasons.values():
        counts[reason] = counts.get(reason, 0) + 1
    return counts


def library_versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in ("fiftyone", "numpy", "scikit-learn", "umap-learn", "hdbscan",
                 "Pillow", "torch", "transformers", "faiss-cpu"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def plugin_version():
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("fiftyone-image-clustering")
    except PackageNotFoundError:
        return None


class _Failed:
    def __init__(self, error):
        self.error = error


def in_background(items, depth=2):
    """Iterates ``items`` in a thread of its own, keeping up to ``depth``
    of them ready, so that producing the next overlaps with the caller's
    work on this one. An exception in the thread is raised here; leaving
    the loop early stops the thread, and ``items`` is closed in that
    thread, where it ran."""
    ready = queue.Queue(depth)
    stop = threading.Event()
    end = object()

    def put(entry):
        while not stop.is_set():
            try:
                ready.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce():
        try:
            for item in items:
                if not put(item):
                    return
            put(end)
        except BaseException as e:  # handed to the caller's thread
            put(_Failed(e))
        finally:
            close = getattr(items, "close", None)
            if close is not None:
                close()

    thread = threading.Thread(target=produce, daemon=True)
    thread.start()
    try:
        while True:
            item = ready.get()
            if item is end:
                return
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        thread.join()
