"""Training jobs: uploaded data trained on in a process of its own, state kept on disk."""
