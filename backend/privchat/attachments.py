"""What a file attached to a message is, checked by its bytes: a document (text, code, PDF) or an image.

The name and the type the browser gives are only hints. A file is taken as text only when its bytes
decode as text (no NUL, few control characters), as a PDF only when ``pypdf`` reads it and it has a
text layer, as an image only when its header and its end are those of a JPEG, PNG or WebP file. Each
refusal is a ``AttachmentRefused`` with its own code and a sentence that names the file and says what
to do; nothing is stored before every check passed (``api/attachments.py``).

No web framework here, and nothing of the model: the store (``storage/attachments.py``) seals what
these functions return, the prompt builder (``llm/attachment_prompt.py``) reads it back.
"""

from __future__ import annotations

import io
import json
import logging
import struct
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from .errors import (ATTACHMENT_EMPTY, ATTACHMENT_IMAGE_INVALID, ATTACHMENT_NOT_TEXT, ATTACHMENT_PDF_CORRUPT,
                     ATTACHMENT_PDF_ENCRYPTED, ATTACHMENT_PDF_NO_TEXT, ATTACHMENT_TOO_LARGE, ATTACHMENT_TYPE_NOT_ALLOWED,
                     CodedError)

KINDS = ("document", "image")
IMAGE_TYPES = {"image/jpeg": "JPEG", "image/png": "PNG", "image/webp": "WebP"}
PDF_TYPE = "application/pdf"

# Text and source files by extension, for browsers that give no type (or application/octet-stream).
TEXT_EXTENSIONS = frozenset("""
txt text md markdown mdown rst adoc org tex bib csv tsv json jsonl ndjson geojson yaml yml toml ini cfg conf
env properties xml html htm xhtml svg css scss sass less js mjs cjs jsx ts tsx vue svelte py pyi pyw ipynb rb go rs java
kt kts scala groovy gradle c h cc cpp cxx hpp hh hxx cs fs fsx swift m mm php pl pm lua r jl dart ex exs erl hrl hs
ml mli clj cljs edn elm nim zig sol sh bash zsh fish ps1 bat cmd sql graphql gql proto thrift tf hcl nix dockerfile
makefile cmake mk diff patch log srt vtt lock gitignore editorconfig
""".split())
TEXT_TYPES = frozenset({
    "application/json", "application/ld+json", "application/xml", "application/javascript", "application/x-javascript",
    "application/typescript", "application/x-typescript", "application/x-sh", "application/x-shellscript",
    "application/x-yaml", "application/yaml", "application/toml", "application/sql", "application/x-sql",
    "application/x-python", "application/x-python-code", "application/x-httpd-php", "application/x-perl",
    "application/x-ruby", "application/graphql", "application/x-tex", "application/x-ndjson", "application/xhtml+xml",
    "application/x-ipynb+json", "image/svg+xml",
})
NO_TYPE = ("", "application/octet-stream")

# Binary files that are often renamed: their first bytes, and what to call them in the sentence.
MAGIC = [
    (b"%PDF-", "a PDF"), (b"\x89PNG\r\n\x1a\n", "a PNG image"), (b"\xff\xd8\xff", "a JPEG image"),
    (b"PK\x03\x04", "a ZIP archive (or an Office document)"), (b"\x1f\x8b", "a gzip archive"), (b"\x7fELF", "a program (ELF)"),
    (b"MZ", "a Windows program"), (b"GIF8", "a GIF image"), (b"ID3", "an MP3 audio file"), (b"OggS", "an Ogg audio file"),
    (b"fLaC", "a FLAC audio file"), (b"\x1aE\xdf\xa3", "a WebM or Matroska file"), (b"7z\xbc\xaf", "a 7-Zip archive"),
    (b"Rar!", "a RAR archive"), (b"SQLite format 3\x00", "an SQLite database"), (b"\xd0\xcf\x11\xe0", "an old Office document"),
]

class AttachmentRefused(CodedError):
    """A file that cannot be attached (attachment_*): the code says which rule, the sentence names the file."""


@dataclass
class Checked:
    """A file that passed: its kind, its real type, and what the model will read of it."""

    kind: str
    mime: str
    pages: list[str] | None = None  # a PDF's text, page by page
    text: str | None = None  # a text file's text
    page_count: int | None = None  # every page of the PDF, also those past max_pages
    width: int | None = None
    height: int | None = None
    extra: dict[str, object] = field(default_factory=dict)

    def content(self) -> str | None:
        """What is sealed in the ``content`` column: JSON, so a PDF keeps its pages apart."""
        if self.kind == "image":
            return None
        return json.dumps({"pages": self.pages} if self.pages is not None else {"text": self.text}, ensure_ascii=False)


def human_size(size: int) -> str:
    if size < 1024:
        return f"{size} bytes"
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB"
    return f"{size / (1024 * 1024):.1f} MB"


def extension(name: str) -> str:
    base = PurePosixPath(name.replace("\\", "/")).name.lower()
    if base in ("dockerfile", "makefile"):
        return base
    return base.rsplit(".", 1)[1] if "." in base.strip(".") else ""


def classify(name: str, mime: str) -> str:
    """``text``, ``pdf`` or ``image`` by the name and type given; AttachmentRefused for any other type."""
    mime = (mime or "").split(";")[0].strip().lower()
    ext = extension(name)
    if mime in IMAGE_TYPES or (mime in NO_TYPE and ext in ("jpg", "jpeg", "png", "webp")):
        return "image"
    if mime == PDF_TYPE or (mime in NO_TYPE and ext == "pdf"):
        return "pdf"
    if mime.startswith("text/") or mime in TEXT_TYPES or ext in TEXT_EXTENSIONS:
        return "text"
    if mime.startswith("audio/") or mime.startswith("video/"):
        raise AttachmentRefused(ATTACHMENT_TYPE_NOT_ALLOWED, name=name, what=f"{'an audio' if mime.startswith('audio/') else 'a video'} "
                                f"file ({mime})", advice=" Speak to the model with the microphone button instead.")
    what = f"a file of type {mime}" if mime not in NO_TYPE else "a file of a type privchat cannot read"
    if mime.startswith("image/"):
        what = f"a {mime.split('/', 1)[1].upper()} image"
    raise AttachmentRefused(ATTACHMENT_TYPE_NOT_ALLOWED, name=name, what=what, advice="")


def check(name: str, mime: str, data: bytes, *, max_bytes: int, max_pages: int) -> Checked:
    """Check a file by its bytes; return what will be stored, or raise AttachmentRefused."""
    if len(data) > max_bytes:
        raise AttachmentRefused(ATTACHMENT_TOO_LARGE, name=name, size=human_size(len(data)), most=human_size(max_bytes))
    how = classify(name, mime)
    if not data:
        raise AttachmentRefused(ATTACHMENT_EMPTY, name=name)
    if how == "image":
        return check_image(name, data)
    if how == "pdf":
        return check_pdf(name, data, max_pages=max_pages)
    return check_text(name, mime, data)


# Text --------------------------------------------------------------------------------------------

def check_text(name: str, mime: str, data: bytes) -> Checked:
    for magic, what in MAGIC:
        if data.startswith(magic):
            raise AttachmentRefused(ATTACHMENT_NOT_TEXT, name=name, why=f"it is {what} with a text file's name")
    text = decode_text(data)
    if text is None:
        raise AttachmentRefused(ATTACHMENT_NOT_TEXT, name=name, why="its bytes are binary data, not UTF-8 or UTF-16 text")
    if not text.strip():
        raise AttachmentRefused(ATTACHMENT_EMPTY, f"{name} holds only blank space: there is nothing in it to read.")
    real = (mime or "").split(";")[0].strip().lower()
    return Checked(kind="document", mime=real if real and real not in NO_TYPE else "text/plain", text=text)


def decode_text(data: bytes) -> str | None:
    """UTF-8 (a BOM or not) or UTF-16 with a BOM; None when it is binary (NULs, many control characters)."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        try:
            text = data.decode("utf-16")
        except UnicodeDecodeError:
            return None
    else:
        if b"\x00" in data:
            return None
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError:
            return None
    controls = sum(1 for c in text[:65536] if ord(c) < 32 and c not in "\t\n\r\f\v\x1b")
    if controls > max(8, len(text[:65536]) // 100):
        return None
    return text.replace("\r\n", "\n")


# PDF ---------------------------------------------------------------------------------------------

def check_pdf(name: str, data: bytes, *, max_pages: int) -> Checked:
    from pypdf import PdfReader  # imported on first use: the server starts without it loaded

    if b"%PDF-" not in data[:1024]:
        what = next((w for magic, w in MAGIC if data.startswith(magic)), None)
        raise AttachmentRefused(ATTACHMENT_PDF_CORRUPT, f"{name} is not a PDF" + (f": it is {what}" if what else "")
                                + ". Attach the file under its own name and type.")
    logging.getLogger("pypdf").setLevel(logging.ERROR)  # its warnings would quote the file's structure
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            try:
                opened = reader.decrypt("")  # only an owner password (printing, copying): it opens
            except Exception:
                opened = 0
            if not opened:
                raise AttachmentRefused(ATTACHMENT_PDF_ENCRYPTED, name=name)
        count = len(reader.pages)
        pages = [(reader.pages[i].extract_text() or "").strip() for i in range(min(count, max_pages))]
    except AttachmentRefused:
        raise
    except Exception as exc:  # pypdf raises many kinds for a damaged file
        raise AttachmentRefused(ATTACHMENT_PDF_CORRUPT, name=name, cause=type(exc).__name__) from None
    if count == 0:
        raise AttachmentRefused(ATTACHMENT_PDF_CORRUPT, f"{name} has no pages: the file is damaged or incomplete.")
    if not any(pages):
        raise AttachmentRefused(ATTACHMENT_PDF_NO_TEXT, name=name, count=count)
    return Checked(kind="document", mime=PDF_TYPE, pages=pages, page_count=count)


# Images ------------------------------------------------------------------------------------------

def check_image(name: str, data: bytes) -> Checked:
    """A JPEG, PNG or WebP file whose header and end are whole; its type comes from its bytes."""
    found = image_size(data)
    if found is None:
        raise AttachmentRefused(ATTACHMENT_IMAGE_INVALID, name=name)
    mime, width, height = found
    return Checked(kind="image", mime=mime, width=width, height=height)


def image_size(data: bytes) -> tuple[str, int, int] | None:
    try:
        if data.startswith(b"\x89PNG\r\n\x1a\n"):
            if data[12:16] != b"IHDR" or b"IEND" not in data[-16:]:
                return None
            width, height = struct.unpack(">II", data[16:24])
            return ("image/png", width, height) if width and height else None
        if data.startswith(b"\xff\xd8"):
            if not data.rstrip(b"\x00").endswith(b"\xff\xd9"):
                return None
            at = 2
            while at + 9 < len(data):
                if data[at] != 0xFF:
                    return None
                marker = data[at + 1]
                if marker == 0xFF:
                    at += 1
                    continue
                length = struct.unpack(">H", data[at + 2:at + 4])[0]
                if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                    height, width = struct.unpack(">HH", data[at + 5:at + 9])
                    return ("image/jpeg", width, height) if width and height else None
                at += 2 + length
            return None
        if data.startswith(b"RIFF") and data[8:12] == b"WEBP":
            if struct.unpack("<I", data[4:8])[0] + 8 != len(data):
                return None
            chunk = data[12:16]
            if chunk == b"VP8 " and data[23:26] == b"\x9d\x01\x2a":
                width, height = struct.unpack("<HH", data[26:30])
                return "image/webp", width & 0x3FFF, height & 0x3FFF
            if chunk == b"VP8L" and data[20] == 0x2F:
                bits = int.from_bytes(data[21:25], "little")
                return "image/webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
            if chunk == b"VP8X":
                return ("image/webp", int.from_bytes(data[24:27], "little") + 1, int.from_bytes(data[27:30], "little") + 1)
            return None
    except (struct.error, IndexError):
        return None
    return None
