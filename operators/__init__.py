"""FiftyOne operators and panels: read the form, call the SDK, show the
result."""

from .analysis import (
    ActOnDuplicates,
    ComputeUniqueness,
    DeleteAnalysisRun,
    FindExactDuplicates,
    FindNearDuplicates,
    LoadDuplicatesView,
)
from .compute import ComputeClusters
from .curation import (
    ExportClusters,
    GroupClusters,
    LabelClusters,
    NameCluster,
    TagClusters,
)
from .hierarchy import CarryDecisions, MergeSuggestions, MoveCut
from .panel import ClustersPanel
from .runs import (
    AssignClusters,
    CompareClusteringRuns,
    DeleteClusteringRun,
    GetClusteringRunInfo,
    LoadClustersView,
    PlotClusteringRun,
    RenameClusteringRun,
    RepairClusteringRuns,
)

OPERATORS = (
    ComputeClusters,
    GetClusteringRunInfo,
    LoadClustersView,
    RenameClusteringRun,
    DeleteClusteringRun,
    RepairClusteringRuns,
    CompareClusteringRuns,
    AssignClusters,
    PlotClusteringRun,
    MoveCut,
    MergeSuggestions,
    CarryDecisions,
    LabelClusters,
    NameCluster,
    TagClusters,
    GroupClusters,
    ExportClusters,
    ComputeUniqueness,
    FindNearDuplicates,
    FindExactDuplicates,
    LoadDuplicatesView,
    ActOnDuplicates,
    DeleteAnalysisRun,
)
PANELS = (ClustersPanel,)


def register_operators(p):
    for cls in OPERATORS + PANELS:
        p.register(cls)
