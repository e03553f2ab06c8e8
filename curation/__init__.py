"""Acting on clusters: tag them, merge them into named groups, export
them."""
