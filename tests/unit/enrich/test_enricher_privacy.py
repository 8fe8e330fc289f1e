"""The PII stage inside the model step: records and item vectors carry the document as the
policy leaves it, findings and the stage's time; a policy file edit applies from the next
batch; the DLQ copy of a dead letter follows the policy; a policy that cannot work is
refused at start."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import orjson
import pytest
from aiokafka import TopicPartition

from stream_aimass.enrich.enricher import DocumentEnricher, Pending
from stream_aimass.models.encoder import Encoder
from stream_aimass.observability import Metrics
from stream_aimass.privacy.policy import PolicyError, write_policy_file
from stream_aimass.privacy.stage import PiiStage
from stream_aimass.records import DeadLetter, Document, Source
from stream_aimass.settings import Settings

TP = TopicPartition("aimass.documents", 0)
TEXT = "Write to jane.roe@example.com or call (415) 555-0132 about order 77."
SCHEMAS = resources.files("stream_aimass") / "resources" / "topics"


def items(enricher: DocumentEnricher, n: int = 2) -> list[Pending]:
    out = []
    for i in range(n):
        doc = Document(f"d{i}", "acme", 0, TEXT, Source(TP.topic, 0, i, 1),
                       title="From jane.roe@example.com", meta={"ip": "203.0.113.9"})  # fmt: skip
        out.append(Pending(doc, enricher.encoder.tokenize([TEXT])[0], TP, b"", None))
    return out


@pytest.fixture()
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path, pii_policy="redact", model_reload_interval_s=0.0001,
                    enriched_include_text=True)  # fmt: skip


def enricher_for(settings: Settings, encoder: Encoder) -> DocumentEnricher:
    metrics = Metrics()
    enricher = DocumentEnricher(encoder, None, "tiny", metrics=metrics, include_text=True)
    enricher.privacy = PiiStage.from_settings(settings, on_reload=enricher._policy_reloaded)
    return enricher


def test_records_and_item_vectors_follow_the_policy(
    settings: Settings, tiny_encoder: Encoder
) -> None:
    enricher = enricher_for(settings, tiny_encoder)
    (out, _) = enricher.run(items(enricher), 0.0, item_vectors=True)
    record = orjson.loads(out.record)
    jsonschema.validate(record, json.loads((SCHEMAS / "aimass.enriched.schema.json").read_text()))
    assert record["text"] == "Write to [EMAIL] or call [PHONE] about order 77."
    assert record["title"] == "From [EMAIL]" and record["meta"] == {"ip": "[IP_ADDRESS]"}
    assert record["text_chars"] == len(record["text"])
    assert sorted((f["field"], f["type"], f["action"]) for f in record["pii_findings"]) == [
        ("meta.ip", "IP_ADDRESS", "redact"), ("text", "EMAIL", "redact"),
        ("text", "PHONE", "redact"), ("title", "EMAIL", "redact"),
    ]  # fmt: skip
    assert record["timings_ms"]["pii"] >= 0
    assert out.item_vector is not None
    assert b"jane.roe" not in out.item_vector and b"[EMAIL]" in out.item_vector
    metrics = enricher.metrics
    assert metrics is not None
    assert metrics.value("aimass_pii_findings_total", type="EMAIL", action="redact") == 4


def test_a_policy_file_edit_applies_from_the_next_batch(
    settings: Settings, tiny_encoder: Encoder
) -> None:
    enricher = enricher_for(settings, tiny_encoder)
    first = orjson.loads(enricher.run(items(enricher, 1), 0.0)[0].record)
    assert first["text"].startswith("Write to [EMAIL]")
    write_policy_file(settings.resolved_pii_policy_file, {"*": "keep", "acme": {"EMAIL": "mask"}})
    second = orjson.loads(enricher.run(items(enricher, 1), 0.0)[0].record)
    assert second["text"] == "Write to ****.***@*******.*** or call (415) 555-0132 about order 77."
    assert sorted((f["field"], f["type"]) for f in second["pii_findings"]) == [
        ("text", "EMAIL"),
        ("title", "EMAIL"),
    ]  # the IP address and the phone number are kept now
    settings.resolved_pii_policy_file.write_text('{"*": "shred"}')  # refused: mask stays
    third = orjson.loads(enricher.run(items(enricher, 1), 0.0)[0].record)
    assert third["text"] == second["text"]
    metrics = enricher.metrics
    assert metrics is not None
    assert metrics.value("aimass_pii_policy_reloads_total", outcome="swapped") == 1
    assert metrics.value("aimass_pii_policy_reloads_total", outcome="failed") == 1


def test_the_dlq_copy_of_a_dead_letter_follows_the_policy(
    settings: Settings, tiny_encoder: Encoder
) -> None:
    enricher = enricher_for(settings, tiny_encoder)
    raw = b"call Jane Roe on (415) 555-0132"
    dead = DeadLetter("decode", "not JSON", raw, Source(TP.topic, 0, 5, 1), 1)
    record = orjson.loads(enricher.protect_dead_letter(dead).to_json())
    jsonschema.validate(record, json.loads((SCHEMAS / "aimass.dlq.schema.json").read_text()))
    assert (record["raw_kind"], record["raw_b64"]) == ("hash", "")
    assert record["source"]["offset"] == 5


def test_a_hash_policy_without_a_key_is_refused_at_start(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="AIMASS_PII_HASH_KEY"):
        PiiStage.from_settings(Settings(data_dir=tmp_path, pii_policy="hash"))
    stage = PiiStage.from_settings(Settings(data_dir=tmp_path, pii_policy="hash", pii_hash_key="k"))
    assert stage.policy().hashes


def test_the_summary_is_taken_from_the_text_as_stored(
    settings: Settings, tiny_encoder: Encoder
) -> None:
    """Sentences are scored on the text the encoder read, then moved onto the rewritten text:
    the summary holds no value the policy removed, and its offsets point into ``text``."""
    from stream_aimass.summaries.extractive import ExtractiveSummarizer

    enricher = enricher_for(settings, tiny_encoder)
    enricher.summarizer = ExtractiveSummarizer(2, position_weight=0.0)
    text = ("Write to jane.roe@example.com about the order. The parcel left on Monday. "
            "Call (415) 555-0132 if it is late. The courier has the address already.")  # fmt: skip
    tok = enricher.tokenize([text])
    doc = Document("d0", "acme", 0, text, Source(TP.topic, 0, 0, 1))
    item = Pending(doc, tok.ids[0], TP, b"", None, tok.offsets[0], tok.word_ids[0])
    (out,) = enricher.run([item], 0.0, item_vectors=False)
    record = orjson.loads(out.record)
    jsonschema.validate(record, json.loads((SCHEMAS / "aimass.enriched.schema.json").read_text()))
    summary = record["summary"]
    assert summary["sentences_total"] == 4 and len(summary["sentences"]) == 2
    stored = record["text"]
    assert "jane.roe" not in summary["text"] and "555-0132" not in summary["text"]
    assert summary["text"] == " ".join(stored[s["start"] : s["end"]] for s in summary["sentences"])
    assert record["timings_ms"]["summary"] >= 0
