"""The clustering run as users know it: the one resolver of requests, the
embed step and its cache, the pipeline, the results object and its
methods, assignment, comparison, charts and how the App shows a run."""
