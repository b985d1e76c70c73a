"""Every file created, opened, written or moved in a folder tree, as Linux's inotify reports it.

The kernel tells of each event as it happens, so a temporary file that lives for a microsecond is
seen as surely as one that stays; polling a listing would miss it. Files opened with O_TMPFILE
(``tempfile.TemporaryFile`` on Linux), which never get a name, are reported too: the kernel
announces their opening and writing to the folder's watch. Used to show that the server writes no
recording to disk (tests/test_speech.py); the negative controls there show what it catches.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import select
import struct
from dataclasses import dataclass
from pathlib import Path

IN_MODIFY = 0x00000002
IN_ATTRIB = 0x00000004
IN_CLOSE_WRITE = 0x00000008
IN_OPEN = 0x00000020
IN_MOVED_TO = 0x00000080
IN_CREATE = 0x00000100
IN_DELETE = 0x00000200
IN_ISDIR = 0x40000000
IN_NONBLOCK = 0o4000
IN_CLOEXEC = 0o2000000
WATCHED = IN_MODIFY | IN_CLOSE_WRITE | IN_OPEN | IN_MOVED_TO | IN_CREATE | IN_DELETE
NAMES = {IN_MODIFY: "modify", IN_CLOSE_WRITE: "close_write", IN_OPEN: "open", IN_MOVED_TO: "moved_to",
         IN_CREATE: "create", IN_DELETE: "delete"}
EVENT = struct.Struct("iIII")


@dataclass(frozen=True)
class Event:
    path: Path  # the folder, or the file in it
    kinds: tuple[str, ...]
    is_dir: bool


class FolderWatch:
    """``with FolderWatch(root) as watch: ...; watch.events()``: what happened under ``root``."""

    def __init__(self, *roots: Path) -> None:
        self.roots = [Path(r) for r in roots]
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        self._libc = libc
        self._fd = libc.inotify_init1(IN_NONBLOCK | IN_CLOEXEC)
        if self._fd < 0:
            raise OSError(ctypes.get_errno(), "inotify_init1 failed")
        self._folders: dict[int, Path] = {}
        self._seen: list[Event] = []
        for root in self.roots:
            for folder, _dirs, _files in os.walk(root):
                self._add(Path(folder))

    def _add(self, folder: Path) -> None:
        wd = self._libc.inotify_add_watch(self._fd, os.fsencode(folder), WATCHED)
        if wd < 0:
            raise OSError(ctypes.get_errno(), f"inotify_add_watch {folder} failed")
        self._folders[wd] = folder

    def _read(self) -> None:
        while select.select([self._fd], [], [], 0.05)[0]:
            try:
                data = os.read(self._fd, 65536)
            except BlockingIOError:
                break
            offset = 0
            while offset < len(data):
                wd, mask, _cookie, length = EVENT.unpack_from(data, offset)
                name = data[offset + EVENT.size: offset + EVENT.size + length].rstrip(b"\0").decode(errors="replace")
                offset += EVENT.size + length
                folder = self._folders.get(wd)
                if folder is None:
                    continue
                path = folder / name if name else folder
                kinds = tuple(label for bit, label in NAMES.items() if mask & bit)
                self._seen.append(Event(path, kinds, bool(mask & IN_ISDIR)))
                if mask & IN_ISDIR and mask & (IN_CREATE | IN_MOVED_TO):
                    self._add(path)  # a new folder: what is made inside it is watched too

    def events(self) -> list[Event]:
        self._read()
        return list(self._seen)

    def clear(self) -> None:
        self._read()
        self._seen.clear()

    def close(self) -> None:
        os.close(self._fd)

    def __enter__(self) -> "FolderWatch":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
