"""The tokenize stage of the enrich role: texts to token ids on a thread pool."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor

from stream_aimass.models.encoder import Tokenized


class PooledTokenizer:
    """Tokenizes on ``pool``, ``threads`` contiguous shares at once (a share has at least
    16 texts: smaller ones cost more to hand over than they save). The Rust tokenizer lets
    go of the GIL, so shares run side by side with the event loop and the model thread."""

    def __init__(
        self, pool: Executor, tokenize: Callable[[list[str]], Tokenized], threads: int
    ) -> None:
        self.pool = pool
        self.tokenize = tokenize
        self.threads = threads

    async def __call__(self, texts: list[str]) -> Tokenized:
        loop = asyncio.get_running_loop()
        shares = max(1, min(self.threads, len(texts) // 16))
        if shares == 1:
            return await loop.run_in_executor(self.pool, self.tokenize, texts)
        size = -(-len(texts) // shares)
        parts = await asyncio.gather(
            *(
                loop.run_in_executor(self.pool, self.tokenize, texts[i : i + size])
                for i in range(0, len(texts), size)
            )
        )
        return Tokenized(
            [ids for part in parts for ids in part.ids],
            [offsets for part in parts for offsets in part.offsets],
            [words for part in parts for words in part.word_ids],
        )
