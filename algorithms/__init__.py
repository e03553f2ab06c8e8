"""Numbers in, numbers out: reducers, clusterers, the hierarchy, the
k-means and neighbour engines, quality, noise, geometry, the 2-D layout,
duplicate groups and the fitted state of a run. Nothing here imports
FiftyOne or pymongo (an import contract checks it); heavy libraries are
imported inside the functions that use them.
"""
