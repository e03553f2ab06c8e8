"""What every command shares: the command itself, its errors, and the
dataset it names."""

from .flags import FlagNames


class Command:
    """One subcommand: its name, help, how its flags are added, what it
    runs and how its errors name its flags."""

    def __init__(self, name, help, add_args, run, flags=None):
        self.name = name
        self.help = help
        self.add_args = add_args
        self.run = run
        self.flags = flags or FlagNames()


class CommandError(Exception):
    """A command that cannot do what was asked, in command-line words
    (exit code 2)."""


def existing_dataset(name):
    import fiftyone as fo

    if not fo.dataset_exists(name):
        names = ", ".join(fo.list_datasets()) or "none"
        raise CommandError(f"no dataset named '{name}' (datasets: {names})")
    return fo.load_dataset(name)
