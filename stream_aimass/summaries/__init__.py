"""Summaries: extractive on the shared encoder pass, generative with a local checkpoint."""
