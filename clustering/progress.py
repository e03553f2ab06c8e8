"""Progress shown on a terminal for command-line and SDK runs."""

import sys


class ProgressBar:
    """A one-line text progress bar: ``bar(fraction, message)``."""

    def __init__(self, stream=None, width=30):
        self.stream = stream or sys.stderr
        self.width = width
        self.last = None

    def __call__(self, fraction, message):
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
