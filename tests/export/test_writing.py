"""Atomic export folders: all or nothing, never over an existing folder unless forced."""

from __future__ import annotations

import pytest

from mamba_export.errors import OutputExistsError, OutputNotWritableError
from mamba_export.export.writing import atomic_folder, check_destination, copy_tokenizer_files


def _leftovers(parent):
    return sorted(p.name for p in parent.iterdir())


def test_success_moves_the_complete_folder_into_place(tmp_path):
    dest = tmp_path / "out"
    with atomic_folder(dest) as staging:
        assert staging.parent == tmp_path and staging != dest
        (staging / "model.onnx").write_text("graph")
        assert not dest.exists()
    assert (dest / "model.onnx").read_text() == "graph"
    assert _leftovers(tmp_path) == ["out"]


def test_failure_leaves_nothing_behind_even_created_parents(tmp_path):
    dest = tmp_path / "a" / "b" / "out"
    with pytest.raises(RuntimeError), atomic_folder(dest) as staging:
        (staging / "model.onnx").write_text("half")
        raise RuntimeError("trace failed")
    assert _leftovers(tmp_path) == []


def test_existing_folder_is_refused_without_force(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "keep.txt").write_text("mine")
    with pytest.raises(OutputExistsError, match="force"):
        check_destination(dest, force=False)
    with pytest.raises(OutputExistsError), atomic_folder(dest):
        pass
    assert (dest / "keep.txt").read_text() == "mine"


def test_force_replaces_the_folder_only_on_success(tmp_path):
    dest = tmp_path / "out"
    dest.mkdir()
    (dest / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(dest, force=True):
        raise RuntimeError("failed")
    assert (dest / "old.txt").exists()
    with atomic_folder(dest, force=True) as staging:
        (staging / "new.txt").write_text("new")
    assert _leftovers(dest) == ["new.txt"]
    assert _leftovers(tmp_path) == ["out"]


def test_folder_under_a_file_is_not_writable(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputNotWritableError, match="file"):
        check_destination(tmp_path / "file" / "out", force=False)


def test_new_folder_gets_ordinary_permissions(tmp_path):
    import os

    with atomic_folder(tmp_path / "out") as staging:
        pass
    umask = os.umask(0)
    os.umask(umask)
    assert (tmp_path / "out").stat().st_mode & 0o777 == 0o777 & ~umask
    assert not staging.exists()


def test_copies_only_tokenizer_files_present(tmp_path):
    source, dest = tmp_path / "src", tmp_path / "dst"
    source.mkdir()
    dest.mkdir()
    (source / "tokenizer.json").write_text("{}")
    (source / "model.safetensors").write_text("weights")
    assert copy_tokenizer_files(source, dest) == ["tokenizer.json"]
    assert _leftovers(dest) == ["tokenizer.json"]
    assert copy_tokenizer_files(None, dest) == []
