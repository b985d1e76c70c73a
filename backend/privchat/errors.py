"""privchat's errors: one root, coded refusals, and the catalogue of every code the API sends.

As in py_webauthn, every failure privchat raises on purpose is a ``PrivchatError`` and says in a
sentence what went wrong; ``cli.main`` catches the root once and prints that sentence, so no
command prints and exits on its own, and anything else is a bug that keeps its traceback.

A ``CodedError`` is a refusal a client acts on. It is made from an entry of ``CATALOGUE`` below,
which names each code the page switches on (``pages/src/lib/describe.js``) once, with its HTTP
status, its ``Retry-After`` where waiting helps, and its sentence: a raise site gives the sentence's
``{fields}`` (``CodedError(QUEUE_FULL, waiting=3)``), or, for an entry marked ``specific``, says it
in its own words when it knows more (``CodedError(HOST_NOT_ALLOWED, "Requests for … come through
the tunnel …")``). The module knows no web framework, so the config, the storage and the model
engine raise their own refusals and let them travel: one handler in ``app.py`` turns any of them
into the API's shape ``{"error": {"code": ..., "message": ...}}`` (``api/error_shape.py``; sealed
when the request was), and a reply stream's ``error`` event carries the same ``as_json()``.

The hierarchy::

    Exception
     └── PrivchatError                    a sentence for people; `privchat` prints it (cli.main)
          ├── ConfigError (config.py), JwkError (jwk.py), DatabaseError (storage/db.py),
          │   CryptoError ─ WrongKeyError (storage/crypto.py), AccessError, DeviceLookupError
          │   (auth/), CliError, ServiceError, SetupError, SiteVerifyError (commands/)
          │                               said at the terminal or written to the log, never sent
          │                               as such: a CryptoError names the row, so the API says
          │                               INTEGRITY_FAILED instead, and an AccessError is said
          │                               inside ACCESS_DENIED
          └── CodedError                  an entry of CATALOGUE: code, status, Retry-After, sentence
               ├── NotFound (+LookupError, here)  not_found: no conversation, message, reply or
               │                                  device with that id (the storage raises it too)
               ├── NotInConversation (+LookupError, storage/history.py)       parent_invalid
               ├── AttachmentMissing (+LookupError), AttachmentTaken, ImportInvalid (+ValueError)
               │   (storage/attachments.py)       attachment_not_found, attachment_taken or
               │                                  attachment_sent, validation_error
               ├── StorageFailure (storage/failures.py)   storage_full, storage_unavailable
               ├── ModelUnavailable (llm/engine_types.py)   model_loading, model_unavailable,
               │                                            model_too_big
               ├── UpstreamFailed ─ ContextOverflow ─ EndedBeforeAnyToken (llm/upstream.py)
               │                                  upstream_*: the model server failed the reply
               ├── SignatureError (auth/signatures.py)   signature_*, digest_*, clock_skew,
               │                                         replayed, device_unknown, device_revoked
               ├── PairingError (auth/pairing.py)   pairing_*: a code refused, typed or linked
               ├── E2EError (e2e/errors.py)         e2e_*: a request not (properly) sealed
               ├── SpeechError (speech/errors.py)   speech_*, audio_*
               └── AttachmentRefused (attachments.py)   attachment_*: a file that cannot be attached

A leaf exists where some code catches it by type (the gate its SignatureError, a probe its
UpstreamFailed, titles a ModelUnavailable) or where it carries more than its entry (NotFound the
kind of id, StorageFailure a reason, ContextOverflow the context size); every other refusal is a
plain ``CodedError(ENTRY, ...)`` at its raise site. tests/test_error_catalogue.py reads every raise
site against its entry; tests/test_docs.py holds the catalogue against describe.js and the docs.
"""

from __future__ import annotations

from dataclasses import dataclass


class PrivchatError(Exception):
    """The root of every failure privchat raises on purpose; ``message`` is a sentence for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Code:
    """One entry of the catalogue: the code the page switches on, its HTTP status and its sentence.

    ``sentence`` may hold ``{fields}`` the raise site fills in. ``specific``: raise sites may say it
    in their own words, because they know more than the entry (which sentence of a refused
    signature header, which model server failed how); the entry's sentence is then what is said
    when they do not. ``retry_after`` (seconds) goes out as the answer's Retry-After.
    """

    code: str
    status: int
    sentence: str
    retry_after: int | None = None
    specific: bool = False


class CodedError(PrivchatError):
    """A refusal made from a catalogue entry: ``CodedError(QUEUE_FULL, waiting=3)``.

    ``sentence`` replaces the entry's own (for a ``specific`` entry); ``fields`` fill the entry's
    sentence; ``retry_after`` replaces the entry's (the rate limiter knows when its window ends).
    """

    def __init__(self, entry: Code, sentence: str | None = None, /, *, retry_after: int | None = None,
                 **fields: object) -> None:
        super().__init__(entry.sentence.format(**fields) if sentence is None else sentence)
        self.entry = entry
        self.code = entry.code
        self.status = entry.status
        self.retry_after = entry.retry_after if retry_after is None else retry_after

    def as_json(self) -> dict[str, str]:
        """What a client reads: the API body's ``error`` object, and a reply stream's ``error`` event."""
        return {"code": self.code, "message": self.message}


class NotFound(CodedError, LookupError):
    """No conversation, message, reply or device with that id: ``NotFound("conversation")``."""

    def __init__(self, what: str) -> None:
        super().__init__(NOT_FOUND, f"There is no {what} with that id (it may have been deleted).")
        self.what = what


# The catalogue --------------------------------------------------------------------------------
# Every code the API answers with, or ends a reply stream with, once. Read by tests/test_docs.py:
# each is known to the page's describe.js, or listed there with the reason the page shows its
# sentence as it comes.

# The HTTP layer: what the framework refuses, and the bodies it cannot read.
BAD_REQUEST = Code("bad_request", 400, "The request could not be understood.")
INVALID_JSON = Code("invalid_json", 400, "The request body is not valid JSON.", specific=True)
VALIDATION_ERROR = Code("validation_error", 400, "The request body is not valid: {detail}.", specific=True)
NOT_FOUND = Code("not_found", 404, "There is nothing at this address.", specific=True)  # NotFound names what
METHOD_NOT_ALLOWED = Code("method_not_allowed", 405, "This address does not accept that method.")
TIMEOUT = Code("timeout", 408, "The request took too long to arrive.")
PAYLOAD_TOO_LARGE = Code("payload_too_large", 413, "The request body is larger than the server accepts.", specific=True)
UNSUPPORTED_MEDIA_TYPE = Code("unsupported_media_type", 415, "Send the body as application/json.")
RATE_LIMITED = Code("rate_limited", 429, "Too many requests from this device; wait a moment and try again.")
# Any other HTTP error of the framework, answered with its own status and description.
HTTP_ERROR = Code("http_error", 500, "The request failed.", specific=True)
INTERNAL = Code("internal", 500, "The server hit an unexpected error; it is logged on the server.", specific=True)

# The gate: where a request comes from, and whether its signature holds (api/gate.py, auth/signatures.py).
ORIGIN_NOT_ALLOWED = Code("origin_not_allowed", 403, "Requests from {origin} are not allowed; add it to server.allowed_origins.")
HOST_NOT_ALLOWED = Code("host_not_allowed", 403, "Requests for host {host!r} are not served; use the loopback address "
                        "or the tunnel's hostname.", specific=True)
ACCESS_DENIED = Code("access_denied", 403, "Cloudflare Access refused this request: {reason}.")
SIGNATURE_MISSING = Code("signature_missing", 401, "This request is not signed; this device must pair first.")
SIGNATURE_MALFORMED = Code("signature_malformed", 401, "The Signature-Input or Signature header is not a valid "
                           "structured field.", specific=True)
SIGNATURE_TAG = Code("signature_tag", 401, "The signature's tag must be {tag!r}.")
SIGNATURE_ALGORITHM = Code("signature_algorithm", 401, "Only {algorithm} signatures are accepted.")
SIGNATURE_COMPONENTS = Code("signature_components", 401, "The signature must cover exactly {components}.")
DIGEST_MISSING = Code("digest_missing", 401, "The request has no Content-Digest header.")
DIGEST_MISMATCH = Code("digest_mismatch", 401, "The body does not match its Content-Digest: it changed on the way.",
                       specific=True)
CLOCK_SKEW = Code("clock_skew", 401, "The signature is dated in the future: this device's clock is off. "
                  "Resync with the server's time and try again.")
SIGNATURE_EXPIRED = Code("signature_expired", 401, "The signature is older than {max_age} seconds; sign the request again.")
SIGNATURE_INVALID = Code("signature_invalid", 401, "The signature does not verify: the request changed after signing, "
                         "or it was signed with another key.", specific=True)
REPLAYED = Code("replayed", 401, "This exact signed request was already used once; sign it again.")
DEVICE_UNKNOWN = Code("device_unknown", 401, "This device is not paired with the server. Pair it with a code from "
                      "`privchat pair`.")
DEVICE_REVOKED = Code("device_revoked", 403, "This device was revoked by the owner. Pair it again to use it.")

# End-to-end encryption: a request not, or not properly, sealed (e2e/, docs/E2E.md). Answered
# plain (there is no context to seal them under) except e2e_key_retired, which is sealed.
E2E_REQUIRED = Code("e2e_required", 400, "This request is not end-to-end encrypted, and privchat accepts only sealed "
                    "requests; reload the page to get a version that seals them.")
E2E_VERSION_OLD = Code("e2e_version_old", 400, "This page seals requests in an older version of privchat's end-to-end "
                       "encryption than the server speaks; reload the page to get the current one.")
E2E_MALFORMED = Code("e2e_malformed", 400, "The Privchat-E2E header is not valid: {detail}.")
E2E_KEY_UNKNOWN = Code("e2e_key_unknown", 400, "This request is sealed to a server key the server no longer holds "
                       "(rotated longer ago than the grace period); pair this device again.")
E2E_KEY_RETIRED = Code("e2e_key_retired", 409, "This request was sealed to a server key that was replaced; the page "
                       "moves to the new key and sends it again.")
E2E_OPEN_FAILED = Code("e2e_open_failed", 400, "The request body did not open: it was altered on the way, or sealed "
                       "for another key, path or device.")

# Pairing and devices (auth/pairing.py, auth/pake.py, api/devices.py).
PAIRING_INVALID = Code("pairing_invalid", 403, "That pairing code is not right. Check it against `privchat pair` "
                       "(or something on the way changed the pairing).")
PAIRING_USED = Code("pairing_used", 403, "That pairing code was already used. Run `privchat pair` for a new one.")
PAIRING_EXPIRED = Code("pairing_expired", 403, "That pairing code has expired. Run `privchat pair` for a new one.")
PAIRING_LOCKED = Code("pairing_locked", 423, "Too many wrong pairing codes; every open code is now void. Run "
                      "`privchat pair` again for a new code.", specific=True)
DEVICE_EXISTS = Code("device_exists", 409, "This key is already registered; the page should use it instead of pairing again.")
INVALID_PUBLIC_KEY = Code("invalid_public_key", 400, "The device key was refused: {reason}.")
INVALID_REQUEST = Code("invalid_request", 400, "Pair with either pairing_proof (a link) or pairing_id, finalization and "
                       "device_proof (a typed code), not both or parts of them.")
INVALID_DEVICE_NAME = Code("invalid_device_name", 400, "A device name must be 1 to {most} characters.", specific=True)

# Conversations and replies (storage/history.py, llm/generations.py, api/chat.py).
PARENT_INVALID = Code("parent_invalid", 400, "{field} names a message of another conversation, or of none.")
REGENERATE_INVALID = Code("regenerate_invalid", 400, "regenerate_of must name a reply of this conversation that "
                          "answers a message.")
EVENT_ID_INVALID = Code("event_id_invalid", 400, "Last-Event-ID does not name an event of this reply; reattach without "
                        "it to start over.")
QUEUE_FULL = Code("queue_full", 503, "The model is busy with {waiting} requests; try again shortly.", retry_after=5)
SHUTTING_DOWN = Code("shutting_down", 503, "The server is shutting down.", retry_after=10)
# Only ever a reply stream's error event (the reply was accepted): the status is what it would be.
GENERATION_FAILED = Code("generation_failed", 500, "The model failed while writing the reply ({cause}).", specific=True)
STORAGE_FAILED = Code("storage_failed", 503, "The reply could not be saved: the database refused the write ({reason}).")

# Stored values and the disk under them (storage/crypto.py, storage/failures.py). 409, not 5xx,
# for a value that does not open: the stored state conflicts with the request, and retrying cannot
# help until the owner restores the database. The sentence names nothing stored.
INTEGRITY_FAILED = Code("integrity_failed", 409, "Part of the stored history or settings failed its integrity check: "
                        "the database was changed outside privchat (rows moved, reordered or restored from an older "
                        "copy), so it is not shown. Restore the database from a backup; the server log names the row.")
STORAGE_FULL = Code("storage_full", 507, "The server's disk is full, so nothing could be saved; free some space on the "
                    "server and try again.", retry_after=30)
STORAGE_UNAVAILABLE = Code("storage_unavailable", 503, "The server's disk refused the write (full, over a size limit, or "
                           "failing); nothing was saved. Check the server's disk and try again.", retry_after=30,
                           specific=True)

# Attachments: the ones a message names (storage/attachments.py, llm/generations.py) ...
TOO_MANY_ATTACHMENTS = Code("too_many_attachments", 400, "A message can carry at most {most} attachments; this one has "
                            "{count}. Send the others with a next message.")
IMAGE_NOT_SUPPORTED = Code("image_not_supported", 400, "The model {model} cannot see images, so it would ignore {image}. "
                           "Pick a model that can see, or send the message without the image.")
ATTACHMENT_NOT_FOUND = Code("attachment_not_found", 404, "There is no attachment with that id: it was deleted with its "
                            "conversation, or never sent and expired.", specific=True)
ATTACHMENT_TAKEN = Code("attachment_taken", 409, "An attachment of this message was already sent with another message, "
                        "or belongs to another conversation; attach the file again.")
ATTACHMENT_SENT = Code("attachment_sent", 409, "That attachment was sent with a message; it goes when its conversation "
                       "is deleted.")
ATTACHMENT_INVALID_DATA = Code("attachment_invalid_data", 400, "{name} did not arrive whole: its data is not base64. "
                               "Attach it again.")
# ... and a file's own content (attachments.py): each sentence names the file.
ATTACHMENT_TYPE_NOT_ALLOWED = Code("attachment_type_not_allowed", 415, "{name} is {what}; privchat attaches text files "
                                   "(plain, Markdown, CSV, JSON, source code), PDFs, and JPEG, PNG or WebP images.{advice}")
ATTACHMENT_TOO_LARGE = Code("attachment_too_large", 413, "{name} is {size}; an attachment can be at most {most} "
                            "(attachments.max_bytes in the server's config).")
ATTACHMENT_EMPTY = Code("attachment_empty", 422, "{name} is empty: there is nothing in it to attach.", specific=True)
ATTACHMENT_NOT_TEXT = Code("attachment_not_text", 422, "{name} is not text: {why}. Attach the file under its own name "
                           "and type.")
ATTACHMENT_PDF_ENCRYPTED = Code("attachment_pdf_encrypted", 422, "{name} is protected by a password, so its text cannot "
                                "be read. Save or print a copy without the password and attach that.")
ATTACHMENT_PDF_CORRUPT = Code("attachment_pdf_corrupt", 422, "{name} could not be read as a PDF: the file is damaged or "
                              "incomplete ({cause}). Open it and save it again, then attach the copy.", specific=True)
ATTACHMENT_PDF_NO_TEXT = Code("attachment_pdf_no_text", 422, "{name} has no text to read: its {count} page(s) are images "
                              "(a scan?). Attach a PDF with a text layer, or the pages as images for a model that can see.")
ATTACHMENT_IMAGE_INVALID = Code("attachment_image_invalid", 422, "{name} does not decode as a JPEG, PNG or WebP image: "
                                "the file is damaged, incomplete or of another type.")

# Models (llm/models.py, llm/engine.py, llm/upstream.py).
MODEL_UNKNOWN = Code("model_unknown", 400, "There is no model named {name!r}; the models are {known}.")
MODEL_LOADING = Code("model_loading", 503, "The model is still loading; try again in a few seconds.", retry_after=5)
MODEL_UNAVAILABLE = Code("model_unavailable", 503, "The model is not available: {reason}", retry_after=30, specific=True)
MODEL_TOO_BIG = Code("model_too_big", 503, "The model does not fit in the memory available.", retry_after=30,
                     specific=True)  # the raise site says by how much, and what it would replace
# A model server (models.list entries with a base_url): each sentence names it, never the conversation.
UPSTREAM_ERROR = Code("upstream_error", 502, "The model server at {where} reported an error mid-reply.", specific=True)
UPSTREAM_CUT = Code("upstream_cut", 502, "The model server at {where} closed the connection before the reply was "
                    "finished.", specific=True)
UPSTREAM_TIMEOUT = Code("upstream_timeout", 502, "The model server at {where} is not answering ({detail}).")
UPSTREAM_UNREACHABLE = Code("upstream_unreachable", 502, "The model server at {where} is not answering ({detail}).",
                            specific=True)
UPSTREAM_BAD_REPLY = Code("upstream_bad_reply", 502, "The model server at {where} sent something that is not an OpenAI "
                          "chat stream.")
UPSTREAM_KEY_MISSING = Code("upstream_key_missing", 502, "The API key file of model {model} cannot be read ({cause}).")
UPSTREAM_NOT_PRIVATE = Code("upstream_not_private", 502, "The model server at {where} resolves to a public address; "
                            "privchat only sends conversations to loopback or private addresses.")

# Settings (api/settings.py).
MAX_TOKENS_TOO_SMALL = Code("max_tokens_too_small", 400, "Max tokens must be {least} or more: a reply shorter than that "
                            "is cut off before it says anything.")
MAX_TOKENS_TOO_LARGE = Code("max_tokens_too_large", 400, "Max tokens can be at most {most}: that is the whole context of "
                            "the model {model}, which the message and the reply share.", specific=True)

# Voice input (speech/).
SPEECH_DISABLED = Code("speech_disabled", 503, "Voice input is turned off on this computer (speech.enabled: false in "
                       "the config).")
SPEECH_UNAVAILABLE = Code("speech_unavailable", 503, "Voice input is not available on this computer: {reason}.",
                          retry_after=30)
SPEECH_BUSY = Code("speech_busy", 503, "Other recordings are being transcribed; try again in a moment.", retry_after=5)
AUDIO_TYPE_NOT_ALLOWED = Code("audio_type_not_allowed", 415, "A recording of type {mime!r} is not accepted; send one "
                              "of {allowed}.")
AUDIO_TOO_LARGE = Code("audio_too_large", 413, "The recording is {size}; at most {most} is accepted.")
AUDIO_TOO_LONG = Code("audio_too_long", 413, "The recording is longer than {most}; record at most {most} at a time.")
AUDIO_UNDECODABLE = Code("audio_undecodable", 422, "The recording could not be read as audio ({detail}).")
AUDIO_SILENT = Code("audio_silent", 422, "No speech was heard in the recording: check the microphone and speak a "
                    "little closer.")

CATALOGUE: tuple[Code, ...] = tuple(value for value in dict(globals()).values() if isinstance(value, Code))
