"""A streamed completion: each piece of text passed on as it arrives, then the whole.

The listener (a chat's SSE stream) sees the answer as the model writes it;
the gateway gets one response assembled from the chunks, with its usage and
so its cost, exactly as if it had not streamed. `TextStream.started` tells
the gateway whether a failure came before any text was passed on (it may
retry) or after (it must not: the listener would see the answer start twice).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import litellm

TextSink = Callable[[str], Awaitable[None]]


class TextStream:
    """Passes streamed text on, remembering whether any was."""

    def __init__(self, sink: TextSink) -> None:
        self._sink = sink
        self.started = False

    async def send(self, text: str) -> None:
        self.started = True
        await self._sink(text)


async def streamed_completion(options: dict[str, Any], stream: TextStream) -> Any:
    """`litellm.acompletion(**options)` streamed through `stream`; the assembled response."""
    chunks = []
    answer = await litellm.acompletion(
        **options, stream=True, stream_options={"include_usage": True}
    )
    async for chunk in answer:
        chunks.append(chunk)
        delta = chunk.choices[0].delta.content if chunk.choices else None
        if delta:
            await stream.send(delta)
    return litellm.stream_chunk_builder(chunks, messages=options["messages"])
