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


def test_every_phase_gets_the_same_texts_under_its_own_tenant_and_ids() -> None:
    from stream_aimass.tools.bench.runs import retag
    from stream_aimass.tools.corpus import generate_documents

    docs = generate_documents(5, seed=101)
    phase = retag(docs, "bench-x", 12)
    assert [d["text"] for d in phase] == [docs[i % 5]["text"] for i in range(12)]
    assert {d["tenant"] for d in phase} == {"bench-x"}
    assert len({d["id"] for d in phase}) == 12
    assert all(d["ts"] == docs[i % 5]["ts"] for i, d in enumerate(phase))


def test_metric_sums_match_labels_and_skip_other_metrics() -> None:
    from stream_aimass.tools.bench.roles import metric_sum

    page = (
        "# HELP aimass_rows_inserted_total Rows\n"
        'aimass_rows_inserted_total{table="documents"} 40.0\n'
        'aimass_rows_inserted_total{table="entity_mentions"} 12.0\n'
        'aimass_rows_inserted_total_created{table="documents"} 1.7e9\n'
        'aimass_records_total{outcome="enriched",role="enrich"} 7.0\n'
    )
    assert metric_sum(page, "aimass_rows_inserted_total") == 52.0
    assert metric_sum(page, "aimass_rows_inserted_total", table="documents") == 40.0
    assert metric_sum(page, "aimass_records_total", role="enrich", outcome="enriched") == 7.0
    assert metric_sum(page, "aimass_records_total", role="sink") == 0.0


def test_process_cpu_time_grows_with_work() -> None:
    import os
    import time

    import pytest

    from stream_aimass.tools.bench.roles import proc_cpu_s

    if not os.path.exists("/proc/self/stat"):
        pytest.skip("process CPU times come from Linux /proc")
    before = proc_cpu_s(os.getpid())
    end = time.process_time() + 0.3
    while time.process_time() < end:
        sum(range(1000))
    assert proc_cpu_s(os.getpid()) - before >= 0.2


def test_the_forward_free_worker_builds_its_vector_pool_once() -> None:
    from types import SimpleNamespace

    from stream_aimass.tools.bench import forward_free_worker

    encoder = SimpleNamespace(dim=24)
    first = forward_free_worker._stored_encode_ids(encoder, [[1, 2, 3], [4]], token_states=True)  # type: ignore[arg-type]
    pool = forward_free_worker._STORES[24]
    second = forward_free_worker._stored_encode_ids(encoder, [[5, 6]])  # type: ignore[arg-type]
    assert forward_free_worker._STORES[24] is pool
    assert first.embeddings.shape == (2, 24) and second.embeddings.shape == (1, 24)
    assert first.token_states is not None and first.token_states[0].shape == (3, 24)
