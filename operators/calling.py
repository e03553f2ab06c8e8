"""Calling operators from Python: ``foo.get_operator(uri)(dataset, ...)``."""

import fiftyone.operators as foo

from .base import RAISE_ERRORS


def call(operator, sample_collection, params, delegate=False,
         delegation_target=None):
    """Executes ``operator`` on ``sample_collection`` (a dataset or view)
    through FiftyOne's executor, immediately or queued for a delegated
    service. Returns the :class:`fiftyone.operators.ExecutionResult`; a
    failure is raised."""
    params = {**params, RAISE_ERRORS: True}
    result = foo.execute_operator(
        operator.uri,
        dict(view=sample_collection.view()),
        params={k: v for k, v in params.items() if v is not None},
        request_delegation=delegate,
        delegation_target=delegation_target,
    )
    result.raise_exceptions()
    return result
