"""Naming clusters: the images that stand for each cluster, and namers (a
vision LLM behind any OpenAI-compatible API, or zero-shot CLIP/SigLIP)
that turn them into a name and a description."""
