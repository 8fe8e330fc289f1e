"""The embedded stack: a Kafka-protocol broker from librdkafka's mock cluster.

librdkafka (bundled in the confluent-kafka wheel) ships a mock cluster that speaks the Kafka
protocol. It has no CreateTopics API, so every topic is created here through the mock API with
an explicit partition count (see FINDINGS.md: auto-created topics get 4 partitions and Faust
must not declare topics against it). Retention is small and fixed (about 5 MiB per partition).
"""

from __future__ import annotations

import ctypes
import glob
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType

from stream_aimass.kafka.clients import register_embedded_broker

_RD_KAFKA_PRODUCER = 0
# The mock-cluster functions below are bound by hand (ctypes), with the signatures of these
# librdkafka versions (pyproject pins confluent-kafka to the same range).
SUPPORTED_LIBRDKAFKA = ((2, 5, 0), (3, 0, 0))

# Kafka protocol API keys and error codes, for fault injection.
API_PRODUCE = 0
API_FETCH = 1
ERR_NOT_LEADER_FOR_PARTITION = 6
ERR_REQUEST_TIMED_OUT = 7
ERR_NOT_ENOUGH_REPLICAS = 19
ERR_TOPIC_AUTHORIZATION_FAILED = 29


class EmbeddedBrokerError(RuntimeError):
    """The embedded broker could not start or refused an operation."""


def _find_librdkafka() -> str:
    import confluent_kafka

    pkg = Path(confluent_kafka.__file__).resolve().parent
    patterns = [
        str(pkg.parent / "confluent_kafka.libs" / "librdkafka*.so*"),
        str(pkg / ".dylibs" / "librdkafka*.dylib"),
        str(pkg / "librdkafka*.so*"),
    ]
    for pattern in patterns:
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    raise EmbeddedBrokerError(
        "librdkafka was not found next to the confluent_kafka package; "
        "install the confluent-kafka wheel (it bundles librdkafka)"
    )


def librdkafka_version(lib: ctypes.CDLL) -> tuple[int, int, int]:
    """The librdkafka version: ``rd_kafka_version()`` is 0xMMmmrrpp."""
    lib.rd_kafka_version.restype = ctypes.c_int
    lib.rd_kafka_version.argtypes = []
    v = int(lib.rd_kafka_version())
    return (v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF


def check_librdkafka(version: tuple[int, int, int], path: str = "librdkafka") -> None:
    """Refuse a librdkafka outside the versions the ctypes bindings were written against."""
    low, high = SUPPORTED_LIBRDKAFKA
    if not low <= version < high:
        shown = ".".join(map(str, version))
        raise EmbeddedBrokerError(
            f"{path} is version {shown}; the embedded broker binds librdkafka's mock-cluster "
            f"API by hand for versions {'.'.join(map(str, low))} up to (not including) "
            f"{'.'.join(map(str, high))}: install confluent-kafka>=2.5,<3"
        )


def _load() -> ctypes.CDLL:
    path = _find_librdkafka()
    lib = ctypes.CDLL(path)
    check_librdkafka(librdkafka_version(lib), path)
    try:
        return _bind(lib)
    except AttributeError as exc:  # a function this librdkafka build does not export
        raise EmbeddedBrokerError(
            f"{path} lacks a mock-cluster function the embedded broker needs: {exc}"
        ) from None


def _bind(lib: ctypes.CDLL) -> ctypes.CDLL:
    vp, cp, ci, sz = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t
    lib.rd_kafka_conf_new.restype = vp
    lib.rd_kafka_conf_new.argtypes = []
    lib.rd_kafka_conf_set.restype = ci
    lib.rd_kafka_conf_set.argtypes = [vp, cp, cp, cp, sz]
    lib.rd_kafka_new.restype = vp
    lib.rd_kafka_new.argtypes = [ci, vp, cp, sz]
    lib.rd_kafka_destroy.restype = None
    lib.rd_kafka_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_new.restype = vp
    lib.rd_kafka_mock_cluster_new.argtypes = [vp, ci]
    lib.rd_kafka_mock_cluster_destroy.restype = None
    lib.rd_kafka_mock_cluster_destroy.argtypes = [vp]
    lib.rd_kafka_mock_cluster_bootstraps.restype = cp
    lib.rd_kafka_mock_cluster_bootstraps.argtypes = [vp]
    lib.rd_kafka_mock_topic_create.restype = ci
    lib.rd_kafka_mock_topic_create.argtypes = [vp, cp, ci, ci]
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.restype = None
    lib.rd_kafka_mock_group_initial_rebalance_delay_ms.argtypes = [vp, ci]
    # Fault injection (tests): request errors, broker down/up.
    i16, i32 = ctypes.c_int16, ctypes.c_int32
    lib.rd_kafka_mock_push_request_errors_array.restype = None
    lib.rd_kafka_mock_push_request_errors_array.argtypes = [vp, i16, sz, ctypes.POINTER(ci)]
    lib.rd_kafka_mock_clear_request_errors.restype = None
    lib.rd_kafka_mock_clear_request_errors.argtypes = [vp, i16]
    lib.rd_kafka_mock_broker_set_down.restype = ci
    lib.rd_kafka_mock_broker_set_down.argtypes = [vp, i32]
    lib.rd_kafka_mock_broker_set_up.restype = ci
    lib.rd_kafka_mock_broker_set_up.argtypes = [vp, i32]
    return lib


class EmbeddedBroker:
    """A single-node Kafka-protocol broker living in this process.

    Other processes connect to :attr:`bootstrap` like to any broker.
    """

    def __init__(self, num_brokers: int = 1) -> None:
        self._lib = _load()
        conf = self._lib.rd_kafka_conf_new()
        errstr = ctypes.create_string_buffer(512)
        # Quiet the handle that hosts the cluster: it never produces.
        self._lib.rd_kafka_conf_set(conf, b"log_level", b"3", errstr, len(errstr))
        self._rk = self._lib.rd_kafka_new(_RD_KAFKA_PRODUCER, conf, errstr, len(errstr))
        if not self._rk:
            raise EmbeddedBrokerError(f"rd_kafka_new failed: {errstr.value.decode()}")
        self._cluster = self._lib.rd_kafka_mock_cluster_new(self._rk, num_brokers)
        if not self._cluster:
            self._lib.rd_kafka_destroy(self._rk)
            raise EmbeddedBrokerError("rd_kafka_mock_cluster_new failed")
        # Consumer groups form faster than the broker default of 3 s.
        self._lib.rd_kafka_mock_group_initial_rebalance_delay_ms(self._cluster, 100)
        self.bootstrap: str = self._lib.rd_kafka_mock_cluster_bootstraps(self._cluster).decode()
        self.topics: dict[str, int] = {}
        # This process talks to a mock cluster: its clients need the mock's workarounds.
        register_embedded_broker(self.bootstrap)

    def create_topic(self, name: str, partitions: int) -> None:
        """Create a topic (idempotent for an existing topic with the same partitions)."""
        if name in self.topics:
            if self.topics[name] != partitions:
                raise EmbeddedBrokerError(
                    f"topic {name} exists with {self.topics[name]} partitions, not {partitions}"
                )
            return
        err = self._lib.rd_kafka_mock_topic_create(self._cluster, name.encode(), partitions, 1)
        if err != 0:
            raise EmbeddedBrokerError(f"creating topic {name} failed with error code {err}")
        self.topics[name] = partitions

    def create_topics(self, topics: Iterable[tuple[str, int]]) -> None:
        for name, partitions in topics:
            self.create_topic(name, partitions)

    # -- fault injection (for fault tests only) -----------------------------------------

    def _live_cluster(self) -> int:
        if not self._cluster:
            raise EmbeddedBrokerError("the embedded broker is closed")
        cluster: int = self._cluster
        return cluster

    def fail_requests(self, api_key: int, errors: Sequence[int]) -> None:
        """For fault tests: answer the next ``len(errors)`` requests of ``api_key`` with errors.

        Each request of that API (from any client) takes the next error off the queue, in
        order; every partition in that request gets it. ``0`` lets a request through. Use
        :data:`API_PRODUCE` and e.g. :data:`ERR_TOPIC_AUTHORIZATION_FAILED` (not retried by
        clients) or :data:`ERR_NOT_ENOUGH_REPLICAS` (retried by clients). Test producers
        sharing the broker take errors off the same queue.
        """
        if not errors:
            return
        array = (ctypes.c_int * len(errors))(*errors)
        self._lib.rd_kafka_mock_push_request_errors_array(
            self._live_cluster(), api_key, len(errors), array
        )

    def clear_request_errors(self, api_key: int) -> None:
        """For fault tests: drop the errors still queued for ``api_key``."""
        self._lib.rd_kafka_mock_clear_request_errors(self._live_cluster(), api_key)

    def set_down(self, broker_id: int = 1) -> None:
        """For fault tests: disconnect every client of the broker and refuse new connections.

        The topic data stays; :meth:`set_up` brings the broker back. A single-broker
        cluster's broker has id 1.
        """
        err = self._lib.rd_kafka_mock_broker_set_down(self._live_cluster(), broker_id)
        if err != 0:
            raise EmbeddedBrokerError(f"setting broker {broker_id} down failed with error {err}")

    def set_up(self, broker_id: int = 1) -> None:
        """For fault tests: accept connections again after :meth:`set_down`."""
        err = self._lib.rd_kafka_mock_broker_set_up(self._live_cluster(), broker_id)
        if err != 0:
            raise EmbeddedBrokerError(f"setting broker {broker_id} up failed with error {err}")

    def close(self) -> None:
        if self._cluster:
            self._lib.rd_kafka_mock_cluster_destroy(self._cluster)
            self._cluster = None
        if self._rk:
            self._lib.rd_kafka_destroy(self._rk)
            self._rk = None

    def __enter__(self) -> EmbeddedBroker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def write_address(path: Path, bootstrap: str) -> None:
    """Publish a standalone broker's address for other local processes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(bootstrap + "\n")
    os.replace(tmp, path)
