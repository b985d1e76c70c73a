"""Request and response bodies: validated by quart-schema, and the OpenAPI document's source."""

from __future__ import annotations

from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field

ID_PATTERN = r"^[A-Za-z0-9_-]{1,100}$"


# Largest integer SQLite stores (and JSON clients read) exactly; bigger ones used to fail the insert with a 500.
MAX_COUNT = 2**53


class Strict(BaseModel):
    # Infinity and NaN are not JSON: stored, they would make every later export and listing invalid JSON.
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ModelStatus(BaseModel):
    state: Literal["loading", "ready", "unloaded", "unreachable", "error", "disabled"]
    name: str
    error: Optional[str] = None
    n_ctx: Optional[int] = None


class E2EKey(BaseModel):
    """The server's end-to-end public key: its RFC 7638 thumbprint, the JWK and its short fingerprint."""

    kid: str
    jwk: dict[str, str]
    fingerprint: str


class SpeechStatus(BaseModel):
    """Voice input (speech/): whether the page shows its microphone button, and the longest recording."""

    enabled: bool
    max_seconds: int


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    time: float
    model: ModelStatus
    e2e: E2EKey
    speech: SpeechStatus


class TranscribeRequest(Strict):
    # The recording, base64; its length is bounded by the route's body limit (speech.max_audio_bytes).
    audio: str
    # What the page's MediaRecorder made, e.g. "audio/webm;codecs=opus" (speech/audio.py CONTAINERS).
    mime: str = Field(min_length=1, max_length=200)


class TranscribeResult(BaseModel):
    text: str
    seconds: float


class ChatOptions(Strict):
    temperature: Optional[float] = Field(default=None, ge=0.0, le=2.0)
    max_tokens: Optional[int] = Field(default=None, ge=1, le=32768)
    seed: Optional[int] = Field(default=None, ge=-1, le=2**31 - 1)


class ChatRequest(Strict):
    conversation_id: Optional[str] = Field(default=None, pattern=ID_PATTERN)
    # Absent only with regenerate_of (a new reply to the same user message, no new message).
    message: Optional[str] = Field(default=None, min_length=1, max_length=200_000)
    # The message this one answers: absent = the end of the current branch; null = a new first
    # message (editing the first message); an edit names the edited message's parent.
    parent_id: Optional[str] = Field(default=None, pattern=ID_PATTERN)
    # An assistant message id: write a sibling of that reply (regenerate); the old one is kept.
    regenerate_of: Optional[str] = Field(default=None, pattern=ID_PATTERN)
    # A name from GET /api/models; absent = the default model.
    model: Optional[str] = Field(default=None, min_length=1, max_length=200)
    options: Optional[ChatOptions] = None
    # Ids from POST /api/attachments, sent with this message; not with regenerate_of.
    attachments: Optional[list[str]] = Field(default=None, max_length=64)


class AttachmentUpload(Strict):
    # A conversation to attach it in (absent: the message will start a new one).
    conversation_id: Optional[str] = Field(default=None, pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)
    mime: str = Field(default="", max_length=200)
    data: str = Field(min_length=1)  # the file, base64 (standard alphabet)


class AttachmentInfo(BaseModel):
    id: str
    name: str
    kind: Literal["document", "image"]
    mime: str
    size: int
    pages: Optional[int] = None  # a PDF's pages


class AttachmentFile(AttachmentInfo):
    data: str  # the file, base64


class AttachmentSeen(BaseModel):
    """How much of a document the model saw (a reply's attachments_seen)."""

    id: str
    name: Optional[str] = None
    kind: Optional[str] = None
    pages: Optional[int] = None
    pages_seen: Optional[int] = None
    lines: Optional[int] = None
    lines_seen: Optional[int] = None
    whole: Optional[bool] = None


class CancelResult(BaseModel):
    cancelled: bool


class ReattachQuery(BaseModel):
    # The id of the last event the client has, "<assistant_message_id>:<n>"; absent = from the start.
    last_event_id: Optional[str] = Field(default=None, max_length=200)


class SettingsDefaults(BaseModel):
    system_prompt: str
    temperature: float
    max_tokens: int
    default_model: Optional[str] = None


class Settings(BaseModel):
    system_prompt: str
    temperature: float
    max_tokens: int
    # The model a chat that names none goes to, for every device (GET /api/models reports it too).
    default_model: Optional[str] = None
    # The config file's values, for the page's "Reset to defaults".
    defaults: Optional[SettingsDefaults] = None


class SettingsUpdate(Strict):
    system_prompt: Optional[str] = Field(default=None, max_length=20_000)
    temperature: Optional[float] = Field(default=None, ge=0.0, le=2.0)
    # Bounded by the server itself, with a sentence that names the bound (api/settings.py):
    # 16 or more (max_tokens_too_small), at most the default model's context (max_tokens_too_large).
    max_tokens: Optional[int] = Field(default=None, ge=0, le=2**31 - 1)
    default_model: Optional[str] = Field(default=None, min_length=1, max_length=200)


class TokenCountRequest(Strict):
    # The message as it would be sent (the limit of /api/chat's message), and the model it goes to.
    text: str = Field(max_length=200_000)
    model: Optional[str] = Field(default=None, min_length=1, max_length=200)


class TokenCount(BaseModel):
    tokens: int  # the text in the model's tokens (exact) or an estimate that errs long
    n_ctx: Optional[int] = None  # the model's context; null when it does not say
    room: Optional[int] = None  # the most tokens a message can have and be read whole (api/tokens.py)
    exact: bool  # counted with the model's own tokenizer
    model: str


class ConversationSummary(BaseModel):
    id: str
    title: str
    created_at: float
    updated_at: float
    message_count: int


class ConversationPage(BaseModel):
    conversations: list[ConversationSummary]
    next_before: Optional[str] = None


class HistoryQuery(BaseModel):
    limit: int = Field(default=50, ge=1, le=200)
    before: Optional[str] = Field(default=None, max_length=200)


class ExportQuery(BaseModel):
    format: Literal["json", "markdown"] = "json"


class StoredMessage(BaseModel):
    id: str
    parent_id: Optional[str] = None  # the message it answers; null for a first message
    role: Literal["system", "user", "assistant"]
    content: str
    status: Literal["complete", "streaming", "cancelled", "interrupted", "error"]
    created_at: float
    completed_at: Optional[float] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    # How the reply ended ("stop", "length", …) and its speed, as the live done event said.
    finish_reason: Optional[str] = None
    ttft_ms: Optional[float] = None
    tokens_per_second: Optional[float] = None
    model: Optional[str] = None  # the model that wrote a reply (its name in models.list)
    attachments: list[AttachmentInfo] = []  # files attached to the owner's message
    attachments_seen: Optional[list[AttachmentSeen]] = None  # a reply: how much of each document the model saw


class Conversation(BaseModel):
    id: str
    title: str
    title_source: Literal["first_message", "model", "owner"] = "first_message"
    created_at: float
    updated_at: float
    # The end of the branch shown by default: the one written last, or the one the owner chose.
    current_leaf: Optional[str] = None
    messages: list[StoredMessage]  # every branch, in the order written


class ConversationUpdate(Strict):
    title: Optional[str] = Field(default=None, min_length=1, max_length=200)
    # Show the branch through this message (on every device); its newest end becomes current_leaf.
    current_leaf: Optional[str] = Field(default=None, pattern=ID_PATTERN)


class ConversationUpdated(BaseModel):
    id: str
    title: str
    title_source: Literal["first_message", "model", "owner"]
    current_leaf: Optional[str] = None


class SearchRequest(Strict):
    q: str = Field(min_length=1, max_length=500)
    limit: int = Field(default=20, ge=1, le=50)


class SearchHit(BaseModel):
    conversation_id: str
    title: str
    message_id: Optional[str] = None  # None when only the title matched
    snippet: str
    # [start, end) offsets in snippet, in characters (code points, not UTF-16 units), of the words that matched.
    highlights: list[tuple[int, int]]
    updated_at: float


class SearchResults(BaseModel):
    results: list[SearchHit]  # newest conversation first
    indexing: bool  # still reading history at start-up: older conversations may be missing


class Deleted(BaseModel):
    deleted: int


# An export file, as imported back: strict, so a wrong file changes nothing and says what is wrong.
class ExportMessage(Strict):
    id: str = Field(pattern=ID_PATTERN)
    parent_id: Optional[str] = Field(default=None, pattern=ID_PATTERN)  # version 2; must come earlier
    role: Literal["system", "user", "assistant"]
    content: str = Field(max_length=1_000_000)
    status: Literal["complete", "streaming", "cancelled", "interrupted", "error"]
    created_at: float = Field(ge=0)
    completed_at: Optional[float] = Field(default=None, ge=0)
    prompt_tokens: Optional[int] = Field(default=None, ge=0, le=MAX_COUNT)
    completion_tokens: Optional[int] = Field(default=None, ge=0, le=MAX_COUNT)
    finish_reason: Optional[str] = Field(default=None, pattern=r"^[a-z_]{1,32}$")
    ttft_ms: Optional[float] = Field(default=None, ge=0, le=1e9)
    tokens_per_second: Optional[float] = Field(default=None, ge=0, le=1e9)
    model: Optional[str] = Field(default=None, max_length=200)
    attachments_seen: Optional[list[dict[str, Any]]] = Field(default=None, max_length=64)  # version 3


class ExportAttachment(Strict):
    """Version 3: an attachment with its message, its file (base64) and its extracted text."""

    id: str = Field(pattern=ID_PATTERN)
    message_id: str = Field(pattern=ID_PATTERN)
    name: str = Field(min_length=1, max_length=255)
    kind: Literal["document", "image"]
    mime: str = Field(max_length=200)
    size: int = Field(ge=0, le=MAX_COUNT)
    pages: Optional[int] = Field(default=None, ge=0, le=MAX_COUNT)
    created_at: float = Field(ge=0)
    position: int = Field(default=0, ge=0, le=1000)
    content: Optional[dict[str, Any]] = None  # {"pages": [...]} or {"text": ...}
    data: str = Field(pattern=r"^[A-Za-z0-9+/]*={0,2}$")


class ExportConversation(Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(max_length=10_000)
    title_source: Optional[Literal["first_message", "model", "owner"]] = None  # version 2
    current_leaf: Optional[str] = Field(default=None, pattern=ID_PATTERN)  # version 2
    created_at: float = Field(ge=0)
    updated_at: float = Field(ge=0)
    messages: list[ExportMessage]
    attachments: list[ExportAttachment] = []  # version 3


class ExportFile(Strict):
    format: Literal["privchat-export"]
    # 1: flat conversations (each imports as one branch); 2: trees; 3: trees with attachments
    version: Literal[1, 2, 3]
    exported_at: float
    conversations: list[ExportConversation]


class ImportResult(BaseModel):
    imported_conversations: int
    imported_messages: int
    skipped: int


class RegisterDevice(Strict):
    # docs/E2E.md, "Pairing". A link: pairing_proof, HMAC-SHA256 keyed by the code over the device id
    # and the kid the link pinned (the code itself never travels). A typed code: the OPAQUE login's
    # id and last message (pairing_id, finalization) and device_proof, keyed by its session key.
    pairing_proof: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9_-]{43}$")
    pairing_id: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9_-]{24}$")
    finalization: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,400}$")
    device_proof: Optional[str] = Field(default=None, pattern=r"^[A-Za-z0-9_-]{43}$")
    public_key: dict[str, Any]
    name: str = Field(min_length=1, max_length=100)


class StartPairing(Strict):
    # The first message of an OPAQUE login with the typed code as its password (base64url).
    request: str = Field(pattern=r"^[A-Za-z0-9_-]{1,400}$")
    public_key: dict[str, Any]


class PairingStarted(BaseModel):
    pairing_id: str
    response: str  # the server's OPAQUE message (base64url)


class DeviceRecord(BaseModel):
    device_id: str
    name: str
    fingerprint: str
    created_at: float
    last_seen_at: Optional[float] = None
    revoked_at: Optional[float] = None
    status: Literal["active", "revoked"]


class RegisteredDevice(DeviceRecord):
    # The server's answer to the page's proof: HMAC keyed by the code over the device id and the
    # kid the server opened the request with, so the page knows that key holder knows the code.
    key_confirmation: str


class DeviceList(BaseModel):
    devices: list[DeviceRecord]


class ModelInfo(BaseModel):
    name: str
    engine: Literal["embedded", "openai"]
    label: Optional[str] = None
    state: Literal["loading", "ready", "unloaded", "unreachable", "error", "disabled"]
    error: Optional[str] = None
    n_ctx: Optional[int] = None
    vision: bool = False  # it can be sent images (an embedded GGUF with mmproj, an openai upstream with vision: true)


class ModelList(BaseModel):
    default: str
    models: list[ModelInfo]
