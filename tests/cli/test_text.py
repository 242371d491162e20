"""Prompt and tokenizer plumbing of the CLI."""

from pathlib import Path

import pytest

from mamba_export.cli.text import load_tokenizer, parse_ids, read_prompt
from mamba_export.errors import MambaExportError

SHARED_TOKENIZER = Path(__file__).resolve().parents[2].parent / "shared/data/gpt-neox-20b-tokenizer.json"


def test_parse_ids_accepts_commas_and_spaces():
    assert parse_ids("1, 2,3") == [1, 2, 3]


@pytest.mark.parametrize("text", ["", "a,b", "-1,2"])
def test_parse_ids_rejects_bad_text(text):
    with pytest.raises(MambaExportError, match="--ids"):
        parse_ids(text)


def test_read_prompt_rejects_empty_prompt():
    with pytest.raises(MambaExportError, match="empty"):
        read_prompt("\n")


def test_missing_tokenizer_names_the_path(tmp_path):
    with pytest.raises(MambaExportError, match="no tokenizer at"):
        load_tokenizer(tmp_path)


def test_malformed_tokenizer_is_reported(tmp_path):
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(MambaExportError, match="not a valid tokenizer.json"):
        load_tokenizer(tmp_path)


@pytest.mark.skipif(not SHARED_TOKENIZER.is_file(), reason="shared GPT-NeoX tokenizer not beside the checkout")
def test_real_tokenizer_round_trips():
    tokenizer = load_tokenizer(SHARED_TOKENIZER)
    ids = tokenizer.encode("Hey how are you doing?").ids
    assert tokenizer.decode(ids) == "Hey how are you doing?"
