"""The generative stage of the enrich role: summaries and headlines on their own thread.

With ``summary_model`` set, every enriched record waits for this stage before it is
produced (the encoder does not: it goes on with the next batches meanwhile). The stage keeps
one thread and a queue; each generation batch is formed from everything waiting then, up to
``summary_batch_size`` documents, whichever encoder batches they came in. A document the
generator fails on keeps its record, with the reason under ``generated.error``; nothing is
lost and the worker goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from typing import Any

import orjson

from stream_aimass.enrich.enricher import Enriched, Pending
from stream_aimass.observability import Metrics
from stream_aimass.records import DeadLetter
from stream_aimass.settings import Settings
from stream_aimass.summaries.generative import Generator, Written

log = logging.getLogger("stream_aimass.enrich")


@dataclass(slots=True)
class _Job:
    text: str
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Written | BaseException]


class GenerationStage:
    """``generator`` behind a queue, on one thread, in micro-batches of ``batch_size``."""

    def __init__(
        self, generator: Generator, batch_size: int, metrics: Metrics | None = None
    ) -> None:
        self.generator = generator
        self.batch_size = batch_size
        self.metrics = metrics
        self._queue: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._work, name="aimass-generate", daemon=True)
        self._thread.start()

    @classmethod
    def from_settings(cls, settings: Settings, metrics: Metrics) -> GenerationStage | None:
        """The stage for ``summary_model`` (None when it is empty)."""
        if not settings.summary_model:
            return None
        return cls(Generator.from_settings(settings), settings.summary_batch_size, metrics)

    def describe(self) -> dict[str, Any]:
        return {**self.generator.describe(), "batch_size": self.batch_size}

    def close(self) -> None:
        """Finish what is queued, then end the thread."""
        self._queue.put(None)
        self._thread.join()

    async def write(self, texts: list[str]) -> list[Written | BaseException]:
        """A :class:`Written` per text, in order (the exception for one that failed)."""
        loop = asyncio.get_running_loop()
        jobs = [_Job(t, loop, loop.create_future()) for t in texts]
        for job in jobs:
            self._queue.put(job)
        return list(await asyncio.gather(*(job.future for job in jobs)))

    async def complete(
        self, items: list[Pending], results: list[Enriched | DeadLetter]
    ) -> list[Enriched | DeadLetter]:
        """``results`` with every enriched record carrying its ``generated`` summary."""
        rows = [
            row
            for row, (item, result) in enumerate(zip(items, results, strict=True))
            if isinstance(result, Enriched) and not item.catalogue and result.record
        ]
        if not rows:
            return results
        texts = []
        for row in rows:
            result = results[row]
            assert isinstance(result, Enriched)
            texts.append(result.text)
        written = await self.write(texts)
        out = list(results)
        for row, outcome in zip(rows, written, strict=True):
            result = out[row]
            assert isinstance(result, Enriched)
            out[row] = replace(result, record=self.with_generated(result.record, outcome))
        return out

    def with_generated(self, record: bytes, outcome: Written | BaseException) -> bytes:
        """The enriched ``record`` with its ``generated`` field and the generator among its
        ``models``."""
        model = self.generator.model_ref
        generated: dict[str, Any] = {
            "summary": "",
            "headline": "",
            "model": {"name": model.name, "version": model.version},
            "search": self.generator.search,
        }
        if isinstance(outcome, BaseException):
            generated["error"] = f"{type(outcome).__name__}: {outcome}"
        else:
            generated["summary"], generated["headline"] = outcome.summary, outcome.headline
        rec = orjson.loads(record)
        rec["generated"] = generated
        rec["models"] = {**(rec.get("models") or {}), model.name: model.version}
        return orjson.dumps(rec)

    # -- the thread --------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            first = self._queue.get()
            if first is None:
                return
            jobs = [first]
            stop = False
            while len(jobs) < self.batch_size:
                try:
                    job = self._queue.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                jobs.append(job)
            self._run(jobs)
            if stop:
                return

    def _run(self, jobs: list[_Job]) -> None:
        """Generate for ``jobs``; on an error, halves until the failing text is alone."""
        t0 = time.perf_counter()
        try:
            written: list[Written | BaseException] = list(
                self.generator.generate([j.text for j in jobs])
            )
        except Exception as exc:
            if self.metrics is not None:
                self.metrics.model_errors.labels(type(exc).__name__).inc()
            if len(jobs) > 1:
                mid = len(jobs) // 2
                self._run(jobs[:mid])
                self._run(jobs[mid:])
                return
            log.warning("the generator failed on a document: %s", exc)
            written = [exc]
        if self.metrics is not None:
            self.metrics.observe_stage("enrich", "generate", time.perf_counter() - t0)
        for job, outcome in zip(jobs, written, strict=True):
            # A closed loop: nobody waits for it any more.
            with contextlib.suppress(RuntimeError):
                job.loop.call_soon_threadsafe(_resolve, job.future, outcome)


def _resolve(
    future: asyncio.Future[Written | BaseException], value: Written | BaseException
) -> None:
    if not future.done():  # the caller went away
        future.set_result(value)
