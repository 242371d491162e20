"""One replica's completion service without Ray: text prompts, text answers and stop strings.

A tiny model with the GPT-NeoX vocabulary is exported with the shared tokenizer, so the
text path (encode the prompt, decode as tokens come, cut at a stop string) runs on a
real tokenizer; answers are checked against ``generate()`` and the tokenizer itself.
"""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("starlette")

from mamba_export.serve.completion import CompletionServer  # noqa: E402
from mamba_export.serve.options import ServeOptions  # noqa: E402

TOKENIZER_JSON = Path(__file__).resolve().parents[3] / "shared/data/gpt-neox-20b-tokenizer.json"
PROMPT = "Plants create energy through a process known as"


@pytest.fixture(scope="module")
def server(tmp_path_factory, ops_library):
    if not TOKENIZER_JSON.is_file():
        pytest.skip("shared GPT-NeoX tokenizer not beside the checkout")
    import torch
    from transformers import MambaConfig, MambaForCausalLM

    from mamba_export.export.convert import export
    from mamba_export.options import ExportOptions

    source = tmp_path_factory.mktemp("text_model") / "model"
    torch.manual_seed(3)
    config = MambaConfig(vocab_size=50280, hidden_size=16, state_size=8, num_hidden_layers=2, expand=2,
                         conv_kernel=4, tie_word_embeddings=False, pad_token_id=0, bos_token_id=0, eos_token_id=0)
    MambaForCausalLM(config).eval().save_pretrained(source)
    shutil.copy(TOKENIZER_JSON, source / "tokenizer.json")
    folder = export(str(source), tmp_path_factory.mktemp("text_export") / "out",
                    ExportOptions(validate=False, show_progress=False))
    server = CompletionServer(folder, ServeOptions(max_batch=4))
    yield server
    server.close()


def ask(server, **body):
    async def call():
        response = await server.completions(json.dumps(body).encode())
        if not body.get("stream"):
            return response.status_code, json.loads(response.body)
        return response.status_code, [chunk async for chunk in response.body_iterator]

    return asyncio.run(call())


def test_a_text_prompt_gets_the_decoded_generate_tokens(server):
    status, body = ask(server, prompt=PROMPT, max_tokens=12, temperature=0)
    assert status == 200, body
    ids = server.tokenizer.encode(PROMPT).ids
    expected = server.model.generate(np.asarray([ids]), max_new_tokens=12)[0, len(ids):].tolist()
    choice = body["choices"][0]
    assert choice["token_ids"] == expected[:len(choice["token_ids"])] and choice["token_ids"]
    assert choice["text"] == server.tokenizer.decode(choice["token_ids"])
    assert body["usage"]["prompt_tokens"] == len(ids)


def test_the_text_ends_before_a_stop_string(server):
    _, free = ask(server, prompt=PROMPT, max_tokens=16, temperature=0)
    text = free["choices"][0]["text"]
    assert len(text) >= 6, text
    stop = text[len(text) // 2:len(text) // 2 + 3]
    status, body = ask(server, prompt=PROMPT, max_tokens=16, temperature=0, stop=[stop, "\x00never"])
    choice = body["choices"][0]
    assert status == 200 and choice["text"] == text[:text.find(stop)] and choice["finish_reason"] == "stop"


def test_streamed_text_adds_up_to_the_whole_answer(server):
    _, whole = ask(server, prompt=PROMPT, max_tokens=10, temperature=0)
    status, chunks = ask(server, prompt=PROMPT, max_tokens=10, temperature=0, stream=True)
    assert status == 200 and chunks[-1] == "data: [DONE]\n\n"
    events = [json.loads(chunk[len("data: "):]) for chunk in chunks[:-1]]
    assert "".join(e["choices"][0]["text"] for e in events) == whole["choices"][0]["text"]
    assert [t for e in events for t in e["choices"][0]["token_ids"]] == whole["choices"][0]["token_ids"]


def test_bad_json_is_a_400(server):
    async def call():
        return await server.completions(b"{\"prompt\": ")

    response = asyncio.run(call())
    assert response.status_code == 400 and "not valid JSON" in json.loads(response.body)["error"]["message"]
