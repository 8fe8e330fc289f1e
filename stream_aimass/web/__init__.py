"""The worker's web endpoints and their API keys."""
