"""Request checks and streamed text: every bad field is named, stop strings end the text."""

from __future__ import annotations

from pathlib import Path

import pytest

from mamba_export.errors import InvalidRequestError
from mamba_export.serve.api import parse_completion_request
from mamba_export.serve.options import ServeOptions
from mamba_export.serve.text import CompletionText

OPTIONS = ServeOptions(max_prompt_tokens=8, max_tokens=100)
TOKENIZER_JSON = Path(__file__).resolve().parents[3] / "shared/data/gpt-neox-20b-tokenizer.json"


def parse(body, tokenizer=None):
    return parse_completion_request(body, OPTIONS, tokenizer, vocab_size=61, eos_token_id=0)


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"max_tokens": 3}, "prompt", "required"),
    ({"prompt": [], "max_tokens": 3}, "prompt", "empty"),
    ({"prompt": list(range(9))}, "prompt", "limit of 8"),
    ({"prompt": [1, 99]}, "prompt", "token 99"),
    ({"prompt": [1, True]}, "prompt", "list of integer"),
    ({"prompt": {"a": 1}}, "prompt", "dict"),
    ({"prompt": "hello"}, "prompt", "no tokenizer"),
    ({"prompt": [1], "max_tokens": -1}, "max_tokens", "from 0 to 100"),
    ({"prompt": [1], "max_tokens": 101}, "max_tokens", "from 0 to 100"),
    ({"prompt": [1], "max_tokens": "5"}, "max_tokens", "integer"),
    ({"prompt": [1], "max_tokens": 2.5}, "max_tokens", "integer"),
    ({"prompt": [1], "temperature": "hot"}, "temperature", "number"),
    ({"prompt": [1], "temperature": -0.5}, "temperature", ">= 0"),
    ({"prompt": [1], "top_p": 0}, "top_p", "(0, 1]"),
    ({"prompt": [1], "seed": "x"}, "seed", "integer"),
    ({"prompt": [1], "stream": "yes"}, "stream", "true or false"),
    ({"prompt": [1], "stop": 3}, "stop", "string"),
    ({"prompt": [1], "stop": ["a"]}, "stop", "no tokenizer"),
    ({"prompt": [1], "n": 2}, "n", "unknown field"),
])
def test_bad_fields_are_named(body, field, words):
    with pytest.raises(InvalidRequestError) as caught:
        parse(body)
    assert caught.value.field == field and words in str(caught.value) and f"'{field}'" in str(caught.value)


def test_a_body_that_is_not_an_object_is_refused():
    with pytest.raises(InvalidRequestError, match="JSON object"):
        parse([1, 2])


def test_defaults_and_settings():
    request = parse({"prompt": [4, 5], "model": "anything"})
    assert request.prompt_ids == (4, 5) and not request.stream and request.stop == ()
    assert request.settings.max_new_tokens == 16 and request.settings.do_sample  # OpenAI's defaults
    greedy = parse({"prompt": [4], "temperature": 0, "max_tokens": 3, "seed": 7, "top_p": 0.5})
    assert not greedy.settings.do_sample and greedy.settings.seed == 7 and greedy.settings.top_p == 0.5
    assert greedy.settings.eos_token_ids == (0,)


@pytest.fixture(scope="module")
def tokenizer():
    if not TOKENIZER_JSON.is_file():
        pytest.skip("shared GPT-NeoX tokenizer not beside the checkout")
    from tokenizers import Tokenizer

    return Tokenizer.from_file(str(TOKENIZER_JSON))


def test_text_prompts_are_tokenized(tokenizer):
    request = parse_completion_request({"prompt": "Hello world", "stop": "x"}, OPTIONS, tokenizer, 50280)
    assert list(request.prompt_ids) == tokenizer.encode("Hello world").ids and request.stop == ("x",)


def test_streamed_text_adds_up_and_stops_before_the_stop_string(tokenizer):
    ids = tokenizer.encode("The cat sat. Then it ran away, fast.").ids
    whole = CompletionText(tokenizer)
    assert "".join(whole.add(t) for t in ids) + whole.finish() == tokenizer.decode(ids)
    stopping = CompletionText(tokenizer, stop=("ran away", "zzz"))
    released = ""
    for token in ids:
        released += stopping.add(token)
        if stopping.stopped:
            break
    assert stopping.stopped and released == "The cat sat. Then it " and stopping.finish() == ""


def test_a_split_character_is_held_until_complete(tokenizer):
    ids = tokenizer.encode("naïve ☃").ids
    text = CompletionText(tokenizer)
    pieces = [text.add(t) for t in ids] + [text.finish()]
    assert "".join(pieces) == "naïve ☃" and all("\ufffd" not in p for p in pieces)
