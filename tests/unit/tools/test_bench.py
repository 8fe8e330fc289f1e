"""The forward-free phase's stand-in for the encoder's forward pass."""

from __future__ import annotations

import numpy as np

from stream_aimass.tools.bench import StoredVectors


def test_stored_vectors_have_the_shapes_of_a_forward_pass() -> None:
    stand_in = StoredVectors(dim=8, rows=64, seed=3)
    ids = [[1, 2, 3], [4], [5, 6, 7, 8, 9]]
    out = stand_in(ids, token_states=True)
    assert out.embeddings.shape == (3, 8) and out.embeddings.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(out.embeddings, axis=1), 1.0, rtol=1e-5)
    assert out.tokens == [3, 1, 5]
    assert out.token_states is not None
    assert [s.shape for s in out.token_states] == [(3, 8), (1, 8), (5, 8)]
    assert stand_in(ids).token_states is None


def test_stored_vectors_grow_for_longer_inputs_than_the_pool() -> None:
    stand_in = StoredVectors(dim=4, rows=8)
    out = stand_in([[0] * 20, [0] * 2], token_states=True)
    assert out.token_states is not None and out.token_states[0].shape == (20, 4)
    assert out.embeddings.shape == (2, 4)


def test_the_stage_profile_times_every_stage() -> None:
    from stream_aimass.tools.bench.stages import measure

    figures = measure(documents=64)
    assert set(figures) == {
        "decode_us", "tokenize_us", "model_step_forward_free_us", "sink_rows_us", "total_us"
    }  # fmt: skip
    assert all(v > 0 for v in figures.values())
    assert figures["total_us"] >= figures["model_step_forward_free_us"]


def test_the_client_comparison_covers_both_clients_both_ways_in_every_codec() -> None:
    from stream_aimass.tools.bench.clients import CODECS, measure

    figures = measure(messages=300, rounds=1)
    assert set(figures) == {
        f"{way} {client} {codec}"
        for way in ("produce", "consume")
        for client in ("aiokafka", "confluent")
        for codec in CODECS
    }
    assert all(len(v) == 1 and v[0] > 0 for v in figures.values())
