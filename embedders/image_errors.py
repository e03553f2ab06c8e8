"""The one error every decoder raises for a file it cannot use."""


class ImageDecodeError(Exception):
    """A file that cannot be used as an image; the message says why."""
