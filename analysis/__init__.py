"""Uniqueness, near-duplicates and exact duplicates from the embeddings
that clustering runs already cache; each stored as a run of its own."""
