"""Naming clusters: choosing the images that stand for a cluster."""
