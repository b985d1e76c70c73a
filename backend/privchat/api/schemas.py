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
    state: Literal["loading", "ready", "error", "disabled"]
    name: str
    error: Optional[str] = None
    n_ctx: Optional[int] = None


class Health(BaseModel):
    status: Literal["ok"]
    version: str
    time: float
    model: ModelStatus


class ChatOptions(Strict):
    temperature: Optional[float] = Field(default=None, ge=0.0, le=2.0)
    max_tokens: Optional[int] = Field(default=None, ge=1, le=32768)
    seed: Optional[int] = Field(default=None, ge=-1, le=2**31 - 1)


class ChatRequest(Strict):
    conversation_id: Optional[str] = Field(default=None, pattern=ID_PATTERN)
    message: str = Field(min_length=1, max_length=200_000)
    options: Optional[ChatOptions] = None


class CancelResult(BaseModel):
    cancelled: bool


class ReattachQuery(BaseModel):
    # The id of the last event the client has, "<assistant_message_id>:<n>"; absent = from the start.
    last_event_id: Optional[str] = Field(default=None, max_length=200)


class SettingsDefaults(BaseModel):
    system_prompt: str
    temperature: float
    max_tokens: int


class Settings(BaseModel):
    system_prompt: str
    temperature: float
    max_tokens: int
    # The config file's values, for the page's "Reset to defaults".
    defaults: Optional[SettingsDefaults] = None


class SettingsUpdate(Strict):
    system_prompt: Optional[str] = Field(default=None, max_length=20_000)
    temperature: Optional[float] = Field(default=None, ge=0.0, le=2.0)
    max_tokens: Optional[int] = Field(default=None, ge=1, le=32768)


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


class Conversation(BaseModel):
    id: str
    title: str
    created_at: float
    updated_at: float
    messages: list[StoredMessage]


class Deleted(BaseModel):
    deleted: int


# An export file, as imported back: strict, so a wrong file changes nothing and says what is wrong.
class ExportMessage(Strict):
    id: str = Field(pattern=ID_PATTERN)
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


class ExportConversation(Strict):
    id: str = Field(pattern=ID_PATTERN)
    title: str = Field(max_length=10_000)
    created_at: float = Field(ge=0)
    updated_at: float = Field(ge=0)
    messages: list[ExportMessage]


class ExportFile(Strict):
    format: Literal["privchat-export"]
    version: Literal[1]
    exported_at: float
    conversations: list[ExportConversation]


class ImportResult(BaseModel):
    imported_conversations: int
    imported_messages: int
    skipped: int


class RegisterDevice(Strict):
    pairing_code: str = Field(min_length=4, max_length=64)
    public_key: dict[str, Any]
    name: str = Field(min_length=1, max_length=100)


class DeviceRecord(BaseModel):
    device_id: str
    name: str
    fingerprint: str
    created_at: float
    last_seen_at: Optional[float] = None
    revoked_at: Optional[float] = None
    status: Literal["active", "revoked"]


class DeviceList(BaseModel):
    devices: list[DeviceRecord]
