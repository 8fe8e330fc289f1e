"""Models: the shared encoder and the heads that read its output."""
