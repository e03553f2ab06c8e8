"""Acting on the clusters of a run: tag them, merge them into named
groups, export them. Each function takes the run object it acts on."""
