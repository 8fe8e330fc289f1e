"""Pieces of the device bench: the GPU sampler's windows and the forward-pass ceiling."""

from __future__ import annotations

from typing import Any

from stream_aimass.tools.bench.device import GpuSampler, encoder_ceiling


def test_a_window_reads_only_the_samples_inside_it() -> None:
    sampler = GpuSampler.__new__(GpuSampler)
    sampler.samples = [(1.0, 10.0, 100.0), (2.0, 90.0, 300.0), (3.0, 50.0, 200.0), (9.0, 0, 0)]
    assert sampler.window(1.5, 3.0) == {
        "gpu_util_mean_pct": 70.0,
        "gpu_util_peak_pct": 90.0,
        "gpu_memory_peak_mib": 300.0,
        "gpu_samples": 2,
    }
    assert sampler.window(4.0, 8.0) is None  # nothing sampled then: no figure, not a zero


def test_the_forward_ceiling_encodes_every_document_once_in_budgeted_batches(
    tiny_encoder: Any,
) -> None:
    ids = tiny_encoder.tokenize([f"document number {i} about banks" for i in range(300)])
    seen: list[int] = []
    real = tiny_encoder.encode_ids

    def counting(batch: list[list[int]], *, token_states: bool = False) -> Any:
        assert token_states  # the entity stage's input is part of the pass measured
        assert len(batch) <= 64 and sum(map(len, batch)) <= 512
        seen.extend(len(s) for s in batch)
        return real(batch, token_states=token_states)

    tiny_encoder.encode_ids = counting
    try:
        assert encoder_ceiling(tiny_encoder, ids, 512, 64) > 0
    finally:
        del tiny_encoder.encode_ids
    assert sorted(seen) == sorted(map(len, ids))
