"""What every operator of this plugin shares: long work runs in a thread
while the App's progress bar moves, and every failure reaches the user.

An exception inside a generator operator is lost on its way to the App
(the server answers with an empty stream), so it is caught here: the
progress bar ends on the error, and a notification says what went wrong.
A delegated run records the error's message on its operation
(``error_message``), where FiftyOne keeps only the traceback, and still
fails. A call from Python (``foo.get_operator(uri)(...)``) gets the
exception.
"""

import queue
import threading
import traceback

import fiftyone.operators as foo
import fiftyone.operators.types as types

from .words import describe

# Set by the Python ``__call__`` wrappers: raise instead of notifying.
RAISE_ERRORS = "raise_errors"


def record_delegated_failure(ctx, error, words=None):
    """Marks the delegated operation failed with the error's message."""
    from fiftyone.operators.delegated import DelegatedOperationService
    from fiftyone.operators.executor import ExecutionResult

    op_id = getattr(ctx, "_delegated_operation_id", None)
    if op_id is None:
        return
    DelegatedOperationService().set_failed(
        op_id,
        result=ExecutionResult(
            error="".join(traceback.format_exception(error)),
            error_message=describe(error, words)),
    )


def long_run_config(name, label, description, scheduled_by_default=True,
                    **extra):
    """The config of an operator whose work may take long: a generator
    that shows progress, run now or scheduled (by default, scheduled)."""
    return foo.OperatorConfig(
        name=name,
        label=label,
        description=description,
        dynamic=True,
        execute_as_generator=True,
        allow_immediate_execution=True,
        allow_delegated_execution=True,
        default_choice_to_delegated=scheduled_by_default,
        **extra,
    )


class GeneratorOperator(foo.Operator):
    """An operator whose ``run(ctx)`` generator does the work; see the
    module for what happens when it fails. ``words`` maps its parameters
    to the labels of its form and ``choices`` the values of its dropdowns
    to theirs, so that errors name what the user sees."""

    words = {}
    choices = {}

    def run(self, ctx):
        raise NotImplementedError

    def render_error(self, error):
        return describe(error, self.words, self.choices)

    def execute(self, ctx):
        try:
            yield from self.run(ctx)
        except Exception as e:
            if ctx.delegated:
                record_delegated_failure(ctx, e, self.words)
                raise
            message = self.render_error(e)
            # The App's progress bar takes only its "linear" and
            # "circular" variants: the label says it failed.
            yield ctx.trigger("set_progress", {
                "progress": 1.0, "label": f"Failed: {message}"})
            yield ctx.trigger("notify", {
                "message": f"{self.config.label} failed: {message}",
                "variant": "error"})
            if ctx.params.get(RAISE_ERRORS):
                raise


class ActionOperator(foo.Operator):
    """A quick operator on an existing run (no progress bar): ``act(ctx)``
    does the work. A failure is shown to the user in the form's words and,
    from Python, raised."""

    words = {}
    choices = {}

    def act(self, ctx):
        raise NotImplementedError

    def render_error(self, error):
        return describe(error, self.words, self.choices)

    def execute(self, ctx):
        try:
            return self.act(ctx)
        except Exception as e:
            if ctx.delegated:
                record_delegated_failure(ctx, e, self.words)
                raise
            if ctx.params.get(RAISE_ERRORS):
                raise
            ctx.ops.notify(f"{self.config.label} failed: "
                           f"{self.render_error(e)}", variant="error")
            return {"error": self.render_error(e)}


def failed_output(ctx):
    """What a quick operator's result dialog shows when it failed: the
    error, in the form's words; ``None`` when it did not fail."""
    error = (ctx.results or {}).get("error")
    if not error:
        return None
    outputs = types.Object()
    outputs.view("error", types.Error(label="Failed", description=error))
    return types.Property(outputs)


def quick_config(name, label, description, **extra):
    """The config of a quick operator on an existing run."""
    return foo.OperatorConfig(name=name, label=label,
                              description=description, dynamic=True,
                              view_target=False, **extra)


def run_with_progress(ctx, work, **kwargs):
    """Runs ``work(progress=callback, **kwargs)``; returns its result.

    Delegated, progress goes to the operation's status. Immediate, ``work``
    runs in a thread and each update is yielded to the App's progress bar
    (use as ``result = yield from run_with_progress(...)``). Errors are
    raised in the caller."""
    if ctx.delegated:
        return work(progress=lambda f, m: ctx.set_progress(progress=f,
                                                           label=m),
                    **kwargs)
    return (yield from _threaded(ctx, work, kwargs))


def _threaded(ctx, work, kwargs):
    updates = queue.Queue()
    outcome = {}

    def target():
        try:
            outcome["result"] = work(
                progress=lambda f, m: updates.put((f, m)), **kwargs)
        except BaseException as e:
            outcome["error"] = e
        finally:
            updates.put(None)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    while True:
        item = updates.get()
        if item is None:
            break
        fraction, message = item
        yield ctx.trigger("set_progress",
                          {"progress": fraction, "label": message})
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["result"]
