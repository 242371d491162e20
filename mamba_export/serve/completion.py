"""One replica's completion service: the model, its scheduler, and the answers to each route.

The HTTP engine (Ray Serve, app.py) only routes requests here. The methods take the
raw body and return Starlette responses, so they run the same under Ray Serve and
under a plain ASGI test client. A request's tokens come from the scheduler's thread
through an asyncio queue; when the client goes away the handler is cancelled and the
request leaves the batch before the next step.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
import uuid
from pathlib import Path

from starlette.responses import JSONResponse, StreamingResponse

from mamba_export.errors import InvalidRequestError, MambaExportError, ServerBusyError
from mamba_export.serve import api
from mamba_export.serve.loading import load_model
from mamba_export.serve.options import ServeOptions
from mamba_export.serve.scheduler import CANCELLED, ERROR, STOP, Scheduler
from mamba_export.serve.text import CompletionText

REPLICA_HEADER = "x-mamba-export-replica"


class CompletionServer:
    """The model of ``folder`` behind a started :class:`Scheduler`; :meth:`close` stops it."""

    def __init__(self, folder, options: ServeOptions):
        self.options = options
        self.model, self.tokenizer = load_model(folder, options)
        self.name = Path(folder).name
        self.replica = f"{socket.gethostname()}:{os.getpid()}"
        self.scheduler = Scheduler(self.model, options.max_batch, options.max_waiting, options.prefill_chunk)
        self.scheduler.start()
        self.started = time.time()

    def close(self) -> None:
        self.scheduler.stop()

    def _json(self, body: dict, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers={REPLICA_HEADER: self.replica})

    def health(self) -> JSONResponse:
        return self._json({"status": "ok", "model": self.name, "provider": self.model.provider,
                           "replica": self.replica})

    def metrics(self) -> JSONResponse:
        return self._json({"replica": self.replica, "uptime_s": time.time() - self.started,
                           **self.scheduler.metrics()})

    def parse(self, raw: bytes) -> api.CompletionRequest:
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as error:
            raise InvalidRequestError(f"the request body is not valid JSON ({error})") from error
        folder = self.model.folder
        return api.parse_completion_request(body, self.options, self.tokenizer, int(folder.info["vocab_size"]),
                                            folder.special_token("eos_token_id"),
                                            folder.special_token("pad_token_id"))

    async def completions(self, raw: bytes):
        """POST /v1/completions: 400 for a bad request, 503 when the queue is full."""
        try:
            request = self.parse(raw)
        except InvalidRequestError as error:
            return self._json(api.error_body(str(error), "invalid_request_error", error.field), 400)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue = asyncio.Queue()
        try:
            request_id = self.scheduler.submit(request.prompt_ids, request.settings,
                                               lambda event: loop.call_soon_threadsafe(events.put_nowait, event))
        except ServerBusyError as error:
            return self._json(api.error_body(str(error), "server_busy"), 503)
        name = f"cmpl-{uuid.uuid4().hex}"
        if request.stream:
            return StreamingResponse(self._stream(name, request_id, request, events), media_type="text/event-stream",
                                     headers={REPLICA_HEADER: self.replica, "cache-control": "no-cache"})
        return await self._whole(name, request_id, request, events)

    async def _events(self, request_id: int, request: api.CompletionRequest, events: asyncio.Queue):
        """(text delta, token or None, finish reason or None) as the tokens come; cancels the request
        when the consumer stops early (client gone) or a stop string is met."""
        text = CompletionText(self.tokenizer, request.stop)
        finished = False
        try:
            while True:
                event = await events.get()
                if event.finish_reason is not None:
                    finished = True
                    if event.finish_reason == ERROR:
                        raise MambaExportError(event.message)
                    yield text.finish(), None, event.finish_reason
                    return
                delta = text.add(event.token)
                if text.stopped:
                    yield delta, event.token, STOP
                    return
                yield delta, event.token, None
        finally:
            if not finished:
                self.scheduler.cancel(request_id)

    async def _whole(self, name: str, request_id: int, request: api.CompletionRequest, events):
        parts, tokens, reason = [], [], CANCELLED
        try:
            async for delta, token, finish in self._events(request_id, request, events):
                parts.append(delta)
                if token is not None:
                    tokens.append(token)
                reason = finish or reason
        except MambaExportError as error:
            return self._json(api.error_body(str(error), "server_error"), 500)
        body = api.completion_body(name, self.name, "".join(parts), tokens, reason, len(request.prompt_ids))
        return self._json(body)

    async def _stream(self, name: str, request_id: int, request: api.CompletionRequest, events):
        try:
            async for delta, token, finish in self._events(request_id, request, events):
                yield api.chunk_event(name, self.name, delta, [] if token is None else [token], finish)
        except MambaExportError as error:
            yield f"data: {json.dumps(api.error_body(str(error), 'server_error'))}\n\n"
        yield api.DONE_EVENT
