"""The HTTP API's request and response shapes (OpenAI's completions API, the subset served here).

:func:`parse_completion_request` turns a decoded JSON body into a checked
:class:`CompletionRequest` or raises InvalidRequestError naming the field, which the
server answers with 400. Responses and streamed chunks are built here too, so the
field names live in one place.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from mamba_export.errors import InvalidRequestError, MambaExportError
from mamba_export.runtime.generation import GenerationSettings
from mamba_export.serve.options import ServeOptions

OBJECT_COMPLETION = "text_completion"
MAX_STOP_STRINGS = 4
# Fields OpenAI clients send that change nothing here (the model is the one being served).
IGNORED_FIELDS = ("model", "user")
FIELDS = ("prompt", "max_tokens", "temperature", "top_p", "top_k", "stop", "seed", "stream") + IGNORED_FIELDS
DEFAULT_MAX_TOKENS = 16  # OpenAI's default


@dataclass(frozen=True)
class CompletionRequest:
    """A checked request: prompt token ids, the generation settings, stop strings, streaming."""

    prompt_ids: tuple
    settings: GenerationSettings
    stop: tuple
    stream: bool


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _int_field(body: dict, name: str, default, low: int, high: int):
    value = body.get(name, default)
    if value is None:
        return default
    if not _is_int(value):
        raise InvalidRequestError(f"'{name}' must be an integer, got {json.dumps(value)}", name)
    if not low <= value <= high:
        raise InvalidRequestError(f"'{name}' must be from {low} to {high}, got {value}", name)
    return value


def _number_field(body: dict, name: str, default: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if not _is_number(value):
        raise InvalidRequestError(f"'{name}' must be a number, got {json.dumps(value)}", name)
    return float(value)


def _prompt_ids(body: dict, tokenizer, vocab_size: int, limit: int) -> tuple:
    if "prompt" not in body or body["prompt"] is None:
        raise InvalidRequestError("'prompt' is required (a string, or a list of token ids)", "prompt")
    prompt = body["prompt"]
    if isinstance(prompt, str):
        if tokenizer is None:
            raise InvalidRequestError("'prompt' is text but the served folder has no tokenizer.json; "
                                      "send a list of token ids", "prompt")
        ids = tuple(tokenizer.encode(prompt).ids)
    elif isinstance(prompt, list) and all(_is_int(t) for t in prompt):
        ids = tuple(prompt)
        bad = [t for t in ids if not 0 <= t < vocab_size]
        if bad:
            raise InvalidRequestError(f"'prompt' holds token {bad[0]}, expected ids in [0, {vocab_size})", "prompt")
    else:
        raise InvalidRequestError("'prompt' must be a string or a list of integer token ids, got "
                                  f"{type(prompt).__name__}", "prompt")
    if not ids:
        raise InvalidRequestError("'prompt' is empty", "prompt")
    if len(ids) > limit:
        raise InvalidRequestError(f"'prompt' has {len(ids)} tokens, more than this server's limit of {limit}",
                                  "prompt")
    return ids


def _stop(body: dict, tokenizer) -> tuple:
    stop = body.get("stop")
    if stop is None:
        return ()
    stops = [stop] if isinstance(stop, str) else stop
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise InvalidRequestError("'stop' must be a non-empty string or a list of them", "stop")
    if len(stops) > MAX_STOP_STRINGS:
        raise InvalidRequestError(f"'stop' holds {len(stops)} strings, at most {MAX_STOP_STRINGS}", "stop")
    if tokenizer is None:
        raise InvalidRequestError("'stop' needs text, but the served folder has no tokenizer.json", "stop")
    return tuple(stops)


def parse_completion_request(body, options: ServeOptions, tokenizer, vocab_size: int,
                             eos_token_id=None, pad_token_id=None) -> CompletionRequest:
    """Check a decoded JSON body; raises InvalidRequestError naming the first bad field."""
    if not isinstance(body, dict):
        raise InvalidRequestError(f"the request body must be a JSON object, got {type(body).__name__}")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidRequestError(f"unknown field '{unknown[0]}'; this server takes {', '.join(FIELDS)}", unknown[0])
    prompt_ids = _prompt_ids(body, tokenizer, vocab_size, options.max_prompt_tokens)
    max_tokens = _int_field(body, "max_tokens", DEFAULT_MAX_TOKENS, 0, options.max_tokens)
    temperature = _number_field(body, "temperature", 1.0)
    if temperature < 0:
        raise InvalidRequestError(f"'temperature' must be >= 0 (0 is greedy), got {temperature}", "temperature")
    top_p = _number_field(body, "top_p", 1.0)
    top_k = _int_field(body, "top_k", 0, 0, vocab_size)
    seed = _int_field(body, "seed", None, 0, 2**63 - 1)
    stream = body.get("stream", False)
    if not isinstance(stream, bool):
        raise InvalidRequestError(f"'stream' must be true or false, got {json.dumps(stream)}", "stream")
    try:
        settings = GenerationSettings.create(
            max_new_tokens=max_tokens, do_sample=temperature > 0, temperature=temperature or 1.0, top_k=top_k,
            top_p=top_p, eos_token_id=eos_token_id, pad_token_id=pad_token_id, seed=seed)
    except MambaExportError as error:  # GenerationSettings' own checks (top_p)
        raise InvalidRequestError(str(error).replace("top_p", "'top_p'"), "top_p") from error
    return CompletionRequest(prompt_ids, settings, _stop(body, tokenizer), stream)


def error_body(message: str, kind: str, field: str | None = None) -> dict:
    """OpenAI's error object."""
    return {"error": {"message": message, "type": kind, "param": field, "code": None}}


def completion_body(request_id: str, model: str, text: str, token_ids: list, finish_reason: str,
                    prompt_tokens: int) -> dict:
    """The whole answer of a request without ``stream``."""
    return {
        "id": request_id, "object": OBJECT_COMPLETION, "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "text": text, "token_ids": token_ids, "finish_reason": finish_reason,
                     "logprobs": None}],
        "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(token_ids),
                  "total_tokens": prompt_tokens + len(token_ids)},
    }


def chunk_event(request_id: str, model: str, text: str, token_ids: list, finish_reason: str | None) -> str:
    """One server-sent event of a streamed answer."""
    body = {"id": request_id, "object": OBJECT_COMPLETION, "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "text": text, "token_ids": token_ids, "finish_reason": finish_reason,
                         "logprobs": None}]}
    return f"data: {json.dumps(body)}\n\n"


DONE_EVENT = "data: [DONE]\n\n"
