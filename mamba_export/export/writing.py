"""Write an export folder all at once, or not at all.

Everything goes into a temporary folder beside the destination; only a complete
folder is renamed into place, so a failed or interrupted export never leaves a
half-written folder that the runtime could mistake for a model. An existing
destination is replaced only when the caller forces it.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from mamba_export.errors import OutputExistsError, OutputNotWritableError

# Files of a transformers tokenizer, copied when the source has them.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
)


def check_destination(output_dir, force: bool) -> Path:
    """Fail early (before any slow step) if ``output_dir`` cannot be written as asked."""
    dest = Path(output_dir).expanduser().absolute()
    if dest.exists() and not force:
        raise OutputExistsError(f"{dest} already exists; pass force (--force) to replace it")
    parent = _existing_ancestor(dest.parent)
    if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
        raise OutputNotWritableError(f"cannot create {dest}: {parent} is not a writable folder")
    return dest


def _existing_ancestor(path: Path) -> Path:
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _make_parents(folder: Path) -> list[Path]:
    """mkdir -p, returning the folders it created (deepest last) so a failure can remove them."""
    created = []
    for parent in reversed([folder, *folder.parents]):
        if not parent.exists():
            try:
                parent.mkdir()
            except OSError as error:
                raise OutputNotWritableError(f"cannot create {parent}: {error}") from error
            created.append(parent)
    return created


@contextlib.contextmanager
def atomic_folder(output_dir, force: bool = False):
    """Yield a temporary folder; on success it becomes ``output_dir``, on error it disappears."""
    dest = check_destination(output_dir, force)
    created = _make_parents(dest.parent)
    try:
        staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.partial-", dir=dest.parent))
    except OSError as error:
        _remove_empty(created)
        raise OutputNotWritableError(f"cannot write in {dest.parent}: {error}") from error
    _set_default_mode(staging)
    try:
        yield staging
        _move_into_place(staging, dest, force)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        _remove_empty(created)
        raise


def _set_default_mode(folder: Path) -> None:
    # mkdtemp makes the folder private (0700); the result should look like any new folder.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(folder, 0o777 & ~umask)


def _move_into_place(staging: Path, dest: Path, force: bool) -> None:
    if dest.exists() or dest.is_symlink():
        if not force:
            raise OutputExistsError(f"{dest} appeared while exporting; pass force (--force) to replace it")
        old = dest.with_name(f".{dest.name}.old-{os.getpid()}")
        os.replace(dest, old)
        os.replace(staging, dest)
        if old.is_dir() and not old.is_symlink():
            shutil.rmtree(old, ignore_errors=True)
        else:
            old.unlink()
        return
    os.replace(staging, dest)


def _remove_empty(folders: list[Path]) -> None:
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            folder.rmdir()


def copy_tokenizer_files(source_dir: Path | None, dest: Path) -> list[str]:
    """Copy the tokenizer files ``source_dir`` has; returns their names."""
    if source_dir is None:
        return []
    copied = []
    for name in TOKENIZER_FILES:
        if (source_dir / name).is_file():
            shutil.copyfile(source_dir / name, dest / name)
            copied.append(name)
    return copied
