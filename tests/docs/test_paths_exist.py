"""Docs name only files that exist: every repository path quoted in the README and docs/ is checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = [REPO / "README.md", REPO / "custom_ops" / "README.md", REPO / "examples" / "README.md",
        *sorted((REPO / "docs").glob("*.md"))]
TOP_LEVEL = ("mamba_export/", "custom_ops/", "kernels/", "tests/", "scripts/", "docs/", "examples/", "results/",
             "models/", "optimum_register/", ".ci/")
# `path` in backticks or a markdown link target, starting at a top-level folder of the repository.
QUOTED = re.compile(r"[`(]((?:%s)[\w./-]*)" % "|".join(re.escape(p) for p in TOP_LEVEL))
RELATIVE_LINK = re.compile(r"\]\(((?!https?:|#)[\w./-]+)\)")


def quoted_paths(doc: Path) -> set:
    text = doc.read_text()
    found = {m.group(1).rstrip(".,:") for m in QUOTED.finditer(text)}
    found |= {str((doc.parent / m.group(1)).resolve().relative_to(REPO)) for m in RELATIVE_LINK.finditer(text)
              if (doc.parent / m.group(1)).resolve().is_relative_to(REPO)}
    # Generated or per-run locations are described, not shipped.
    return {p for p in found if not any(part in p for part in ("build/", "*", "{", "NN", "results/tmp"))}


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_quoted_path_exists(doc):
    missing = sorted(p for p in quoted_paths(doc) if not (REPO / p).exists())
    assert not missing, f"{doc.relative_to(REPO)} names paths that do not exist: {missing}"


def test_the_checker_sees_paths(tmp_path):
    assert {"custom_ops/", "kernels/", "mamba_export/ops/"} <= quoted_paths(REPO / "README.md")
    doc = tmp_path / "doc.md"
    doc.write_text("see `docs/no_such_file.md` and `scripts/setup.sh`")
    assert quoted_paths(doc) == {"docs/no_such_file.md", "scripts/setup.sh"}
