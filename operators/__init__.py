"""FiftyOne operators and panels: read the form, call the SDK, show the
result."""


def register_operators(p):
    pass
