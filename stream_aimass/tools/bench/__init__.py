"""The benchmark (``stream-aimass bench``): model ceiling, pipeline, naive loop, in one run."""

from stream_aimass.tools.bench.run import run_bench
from stream_aimass.tools.bench.scenarios import StoredVectors

__all__ = ["StoredVectors", "run_bench"]
