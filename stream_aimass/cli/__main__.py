"""``python -m stream_aimass.cli``: the same as the ``stream-aimass`` command."""

from stream_aimass.cli.main import main

main()
