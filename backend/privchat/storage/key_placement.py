"""Would one backup hold both the key file and the database?

Encryption at rest protects a copy of the database only while the key file is not copied with it.
The defaults put both under the owner's home folder (the key in the config dir, the database in
the data dir), so a backup of the home folder, or an image of the disk, holds both and reads as
plain text to whoever gets it. ``privchat doctor`` reports this, with the ways to keep them apart.
"""

from __future__ import annotations

import os
from pathlib import Path

FIX = ("keep the key apart from what you back up with the database: use storage.encryption: passphrase "
       "(the key then comes from your passphrase and is stored nowhere; export and re-import the history to "
       "switch), or move the key file to another volume (a USB stick, a separate encrypted volume) and set "
       "storage.key_file to its new path; back up the key file separately from the database")


def _existing(path: Path) -> Path:
    """The path itself, or its nearest folder that exists (the file may not be created yet)."""
    path = path.expanduser().resolve()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def mount_point(path: Path) -> Path:
    """The root of the filesystem that holds ``path``."""
    path = _existing(path)
    device = path.stat().st_dev
    while path != path.parent and path.parent.stat().st_dev == device:
        path = path.parent
    return path


def shared_backup(key_file: Path, database: Path, home: Path | None = None) -> str | None:
    """Why one backup would take both files ("are both under your home folder …"), or None."""
    home = (home or Path.home()).expanduser().resolve()
    key, data = key_file.expanduser().resolve(), database.expanduser().resolve()
    if key.is_relative_to(home) and data.is_relative_to(home):
        return f"are both under your home folder {home}"
    if os.stat(_existing(key)).st_dev == os.stat(_existing(data)).st_dev:
        return f"are on the same filesystem (mounted at {mount_point(data)})"
    return None
