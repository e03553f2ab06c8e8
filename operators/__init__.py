"""FiftyOne operators and panels: read the form, call the SDK, show the
result."""

from .compute import ComputeClusters
from .panel import ClustersPanel
from .runs import (
    DeleteClusteringRun,
    GetClusteringRunInfo,
    LoadClustersView,
    RenameClusteringRun,
)

OPERATORS = (
    ComputeClusters,
    GetClusteringRunInfo,
    LoadClustersView,
    RenameClusteringRun,
    DeleteClusteringRun,
)
PANELS = (ClustersPanel,)


def register_operators(p):
    for cls in OPERATORS + PANELS:
        p.register(cls)
