"""bench's sink tool: the real sink loop over a replay of enriched records into chdb."""

from __future__ import annotations

from stream_aimass.settings import Settings
from stream_aimass.tools.bench.sink import drain
from stream_aimass.tools.bench.stages import enriched_records


def test_the_sink_replay_stores_every_record_and_commits_to_the_end(settings: Settings) -> None:
    records = enriched_records(40)
    figures = drain(records * 2, settings)
    assert figures["documents"] == 80
    assert figures["committed"] == 80  # the end of every partition: nothing left behind
    assert figures["rows"] >= 80 and figures["inserts"] >= 1
    assert figures["rows_per_s"] > 0 and figures["cpu_us_per_row"] > 0
