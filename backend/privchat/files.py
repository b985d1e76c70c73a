"""Writing the owner's files: only when the content changes, atomically, with a backup of what was there.

`privchat tunnel setup` and `privchat service install` both write files the owner may have
edited (configs, the page's _headers, a systemd unit); a crash must never leave half a file, and a
change must never lose the owner's version. One implementation for both.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable


@dataclass
class FileChange:
    """What happened to one file, for the printed and the JSON summary."""

    what: str
    path: str
    status: str  # created | updated | unchanged | skipped | missing | would-create | would-update
    backup: str | None = None
    notes: list[str] = field(default_factory=list)


def backup_path(path: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    candidate = path.with_name(f"{path.name}.bak-{stamp}")
    counter = 1
    while candidate.exists():
        candidate = path.with_name(f"{path.name}.bak-{stamp}-{counter}")
        counter += 1
    return candidate


def write_file(what: str, path: Path, content: str, *, mode: int, dry_run: bool, notes: list[str] | None = None,
               same: Callable[[str], bool] | None = None) -> FileChange:
    """Write content unless the file already says the same; back up the old file first.

    ``same`` lets a caller compare meaning instead of bytes (the privchat config keeps the
    owner's comments when nothing would change).
    """
    notes = list(notes or [])
    if path.exists():
        old = path.read_text(encoding="utf-8")
        if old == content or (same is not None and same(old)):
            return FileChange(what, str(path), "unchanged", notes=notes)
        if dry_run:
            return FileChange(what, str(path), "would-update", notes=notes)
        backup = backup_path(path)
        shutil.copy2(path, backup)
        atomic_write(path, content, mode=path.stat().st_mode & 0o777)
        return FileChange(what, str(path), "updated", backup=str(backup), notes=notes)
    if dry_run:
        return FileChange(what, str(path), "would-create", notes=notes)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, content, mode=mode)
    return FileChange(what, str(path), "created", notes=notes)


def atomic_write(path: Path, content: str, *, mode: int) -> None:
    """Write beside the target and rename, so a crash never leaves half a config."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(content)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
