#!/usr/bin/env python3
"""Fetch and split the corpus that models/fortunes-mamba is trained on.

The corpus is the English fortune-cookie collection that Debian ships in the packages
`fortunes` and `fortunes-min` (source package fortune-mod, Debian main, BSD licence; see the
packages' copyright file, which this script copies next to the data). Both packages are fetched
with `apt-get download` at a pinned version and checked against pinned SHA-256 sums, so every
run sees the same bytes. Each fortune (the text between two `%` lines) is one document.

The held-out split is deterministic and independent of file order: a fortune goes to the test
split when the first 8 hex digits of the SHA-256 of its text, read as an integer, are divisible
by 20 (about 5 %). Exact duplicates are dropped first, so no test fortune also appears in train.

Output (JSON lines, one {"file", "text"} object per fortune) under --out (default build/fortunes):
train.jsonl, test.jsonl, manifest.json (package versions, sums, counts) and copyright.

    python3 scripts/prepare_fortunes.py [--out build/fortunes]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

VERSION = "1:1.99.1-7.3"
PACKAGES = {
    "fortunes": "41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5",
    "fortunes-min": "9eed5b45064e41133dae0967cf3a17588ad77c014fcc7bf1527fa3ea48e44d07",
}
DATA_DIR = "usr/share/games/fortunes"
# Not prose: drawings made of characters, and a file of untranslated non-English snippets.
SKIPPED_FILES = ("ascii-art", "translate-me")
TEST_MODULUS = 20


def is_test(text: str) -> bool:
    """The split rule: a pure function of the fortune's text."""
    return int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % TEST_MODULUS == 0


def split_fortunes(raw: str) -> list[str]:
    """Fortunes of one file: blocks separated by lines holding only '%'; tabs become spaces."""
    out, block = [], []
    for line in raw.splitlines():
        if line.strip() == "%":
            text = "\n".join(block).expandtabs(4).strip("\n")
            if text.strip():
                out.append(text)
            block = []
        else:
            block.append(line.rstrip())
    text = "\n".join(block).expandtabs(4).strip("\n")
    if text.strip():
        out.append(text)
    return out


def fetch(work: Path) -> Path:
    """apt-get download both packages at the pinned version, check their sums, unpack into work/root."""
    root = work / "root"
    for name, digest in PACKAGES.items():
        subprocess.run(["apt-get", "download", f"{name}={VERSION}"], cwd=work, check=True,
                       stdout=subprocess.DEVNULL)
        (deb,) = work.glob(f"{name}_*.deb")
        got = hashlib.sha256(deb.read_bytes()).hexdigest()
        if got != digest:
            sys.exit(f"{deb.name}: SHA-256 {got} is not the pinned {digest}")
        subprocess.run(["dpkg-deb", "-x", str(deb), str(root)], check=True)
    return root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("build/fortunes"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        root = fetch(Path(tmp))
        seen: set[str] = set()
        splits: dict[str, list[dict]] = {"train": [], "test": []}
        files = sorted(p for p in (root / DATA_DIR).iterdir()
                       if p.is_file() and p.suffix not in (".dat", ".u8") and p.name not in SKIPPED_FILES)
        for path in files:
            for text in split_fortunes(path.read_text(encoding="utf-8", errors="replace")):
                if text in seen:
                    continue
                seen.add(text)
                splits["test" if is_test(text) else "train"].append({"file": path.name, "text": text})
        args.out.mkdir(parents=True, exist_ok=True)
        shutil.copy(root / "usr/share/doc/fortunes/copyright", args.out / "copyright")

    for name, rows in splits.items():
        with open(args.out / f"{name}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
    manifest = {
        "source": "Debian bookworm main, packages fortunes and fortunes-min (source fortune-mod)",
        "version": VERSION,
        "sha256": PACKAGES,
        "licence": "BSD (Regents of the University of California), per the packages' copyright file",
        "files": [p.name for p in files],
        "skipped_files": list(SKIPPED_FILES),
        "split_rule": f"test iff int(sha256(text)[:8], 16) % {TEST_MODULUS} == 0",
        "counts": {name: len(rows) for name, rows in splits.items()},
        "characters": {name: sum(len(r["text"]) for r in rows) for name, rows in splits.items()},
    }
    (args.out / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps({k: manifest[k] for k in ("counts", "characters")}))


if __name__ == "__main__":
    main()
