"""The ``image-clustering`` command: read the flags, call the SDK, print
the result.

Exit codes: 0 when the command did what was asked; 1 when it ran but
failed (a damaged run, an image that could not be written, a cluster that
could not be named); 2 when what was asked cannot be done as asked (a bad
flag or value, a dataset or run that does not exist); 130 when
interrupted. Errors name the flag to change.
"""

import argparse
import sys

from ..storage.records import StoreError
from ..storage.runs import RunNotFound
from ..units import ParamError
from .base import CommandError
from .commands import COMMANDS, cluster_epilog


def build_parser():
    parser = argparse.ArgumentParser(
        prog="image-clustering",
        description="Cluster images into FiftyOne runs you can browse.")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        p = sub.add_parser(
            command.name, help=command.help, description=command.help,
            epilog=cluster_epilog() if command.name == "cluster" else None,
            formatter_class=argparse.RawDescriptionHelpFormatter)
        command.add_args(p)
        p.set_defaults(command_object=command)
    return parser


def _quiet_fiftyone_stdout():
    """FiftyOne logs (its MongoDB version notice among them) to stdout,
    where they mix with what a command prints: they go to stderr."""
    import logging

    import fiftyone.core.logging as fol

    fol.init_logging()
    for name in ("fiftyone", "fiftyone.core.odm.database", "eta"):
        for handler in logging.getLogger(name).handlers:
            if getattr(handler, "stream", None) is sys.stdout:
                handler.setStream(sys.stderr)


def main(argv=None):
    args = build_parser().parse_args(argv)
    command = args.command_object
    try:
        _quiet_fiftyone_stdout()
        return command.run(args)
    except KeyboardInterrupt:
        print("\ninterrupted; nothing half-written is left (the next "
              "command finishes or undoes it)", file=sys.stderr)
        return 130
    except ParamError as e:
        print(f"error: {command.flags.render(e)}", file=sys.stderr)
        return 2
    except (CommandError, RunNotFound) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except (StoreError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
