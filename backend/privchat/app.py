"""The Quart application: wiring of the stores, the model registry, CORS, error shapes and the request
pipeline (``api/pipeline.py``: body limit, gate, rate limit, handler, seal)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from quart import Quart, Response, g, request
from quart_rate_limiter import RateLimitExceeded
from quart_schema import QuartSchema, RequestSchemaValidationError
from werkzeug.exceptions import HTTPException

from . import __version__
from .api import attachments, chat, devices, e2e_key, health, history, models, search, settings, tokens, transcribe
from .api.cors import ACCESS_EXPIRES_HEADER, install_cors
from .api.pipeline import install_request_pipeline
from .auth.access import AccessVerifier
from .auth.devices import DeviceStore
from .auth.pairing import PairingStore
from .auth.pake import PairingLogins
from .auth.replay import NonceStore
from .auth.signatures import SignatureVerifier
from .config import Config
from .api.error_shape import HTTP_CODES, api_error_response
from .e2e.keys import E2EKeyStore
from .errors import HTTP_ERROR, INTEGRITY_FAILED, INTERNAL, INVALID_JSON, RATE_LIMITED, VALIDATION_ERROR, CodedError
from .llm.models import ModelRegistry
from .llm.generations import GenerationManager
from .llm.titles import TitleWriter
from .speech.transcriber import Transcriber
from .storage.crypto import CryptoError
from .storage.db import Database, PassphraseSource
from .storage.failures import storage_failure
from .storage.history import HistoryStore
from .storage.search_index import SearchIndex
from .storage.settings import SettingsStore

log = logging.getLogger(__name__)

JSON_CSP = "default-src 'none'; frame-ancestors 'none'"


@dataclass
class AppState:
    """Everything a request handler needs, reachable as ``current_app.extensions["privchat"]``."""

    config: Config
    models: ModelRegistry  # every configured model (llm/models.py); .status is the default one's
    verifier: SignatureVerifier
    access: AccessVerifier | None
    database: Database | None = None
    history: HistoryStore = None  # type: ignore[assignment]
    settings: SettingsStore = None  # type: ignore[assignment]
    devices: DeviceStore = None  # type: ignore[assignment]
    pairing: PairingStore = None  # type: ignore[assignment]
    logins: PairingLogins = field(default_factory=PairingLogins)  # typed-code pairing (OPAQUE), in memory
    nonces: NonceStore = None  # type: ignore[assignment]
    generations: GenerationManager = None  # type: ignore[assignment]
    e2e_keys: E2EKeyStore = None  # type: ignore[assignment]
    search: SearchIndex = None  # type: ignore[assignment]
    titles: TitleWriter = None  # type: ignore[assignment]
    search_build: "asyncio.Task[None] | None" = None
    speech: Transcriber = None  # type: ignore[assignment]  # voice input; its model loads on first use

    def __post_init__(self) -> None:
        if self.speech is None:
            self.speech = Transcriber(self.config)

    def attach(self, database: Database) -> None:
        self.database = database
        self.history = HistoryStore(database)
        self.settings = SettingsStore(database, self.config, default_model=self.models.default)
        self.devices = DeviceStore(database)
        self.pairing = PairingStore.from_config(database, self.config)
        self.nonces = NonceStore(database)
        self.generations = GenerationManager.from_config(self.models, self.history, self.settings, self.config)
        self.e2e_keys = E2EKeyStore(database, self.config.e2e.rotation_grace_hours * 3600)
        self.search = SearchIndex()  # in memory only; built in the background at start-up
        self.history.observers.append(self.search)
        self.titles = TitleWriter.from_config(self.models, self.history, self.config)
        self.titles.busy = self.generations.busy
        self.generations.titles = self.titles


def create_app(config: Config, *, database: Database | None = None,
               passphrase_source: PassphraseSource | None = None) -> Quart:
    """Build the app. Pass an open ``database`` to unlock it before serving (``privchat serve`` does)."""
    app = Quart("privchat")
    server = config.server
    app.config.update(
        RESPONSE_TIMEOUT=None,
        BODY_TIMEOUT=60,
        PRIVCHAT_LIMITS=config.rate_limits,
        JSON_SORT_KEYS=False,
    )
    access_cfg = config.access
    state = AppState(
        config=config,
        models=ModelRegistry(config),
        verifier=SignatureVerifier(config.auth.signature_max_age_seconds,
                                   config.auth.signature_max_future_seconds),
        access=AccessVerifier(access_cfg.team_domain, access_cfg.aud, access_cfg.certs_url)
        if access_cfg.team_domain else None,
    )
    if database is not None:
        state.attach(database)
    app.extensions["privchat"] = state

    QuartSchema(app, info={"title": "privchat API", "version": __version__},
                openapi_path="/api/openapi.json", redoc_ui_path=None, scalar_ui_path=None, swagger_ui_path=None)
    for module in (health, devices, chat, history, settings, e2e_key, models, search, transcribe, attachments, tokens):
        app.register_blueprint(module.blueprint)
    app = install_cors(app, server.allowed_origins)
    _install_error_handlers(app)
    _install_headers(app, server.allowed_origins)
    # Body limit, gate, rate limit, pairing, handler, seal: every step a request meets, in order.
    install_request_pipeline(app, config)

    @app.before_serving
    async def open_everything() -> None:
        if state.database is None:
            state.attach(await Database.open(config, passphrase_source))
        await state.e2e_keys.load()
        recovered = await state.history.mark_unfinished_interrupted()
        if recovered:
            log.warning("%d reply(ies) left unfinished by the last run are marked interrupted", recovered)
        state.search_build = asyncio.get_running_loop().create_task(state.search.build(state.history))
        state.models.start_loading()

    @app.after_serving
    async def close_everything() -> None:
        if state.search_build is not None:
            state.search_build.cancel()
            await asyncio.gather(state.search_build, return_exceptions=True)
        if state.generations is not None:
            await state.generations.shutdown()
        state.models.close()
        state.speech.close()
        if state.database is not None:
            await state.database.close()

    return app


def _install_error_handlers(app: Quart) -> None:
    @app.errorhandler(CodedError)
    async def coded_error(error: CodedError) -> Response:
        """Every refusal privchat makes on purpose, from any layer (the store's NotFound included), in
        the API's one shape; sealed on the way out when the request was (api/sealed.py)."""
        return api_error_response(error)

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_error(error: RequestSchemaValidationError) -> Response:
        return api_error_response(CodedError(VALIDATION_ERROR, describe_validation_error(error.validation_error)))

    @app.errorhandler(UnicodeDecodeError)
    async def not_utf8(error: UnicodeDecodeError) -> Response:
        # Quart decodes a JSON body as UTF-8 before parsing it: other bytes are a client error, not a 500.
        if error.object == await request.get_data(cache=True):
            return api_error_response(CodedError(INVALID_JSON, "The request body is not valid JSON: it is not UTF-8 text."))
        return await unexpected(error)

    @app.errorhandler(RateLimitExceeded)
    async def rate_limited(error: RateLimitExceeded) -> Response:
        return api_error_response(CodedError(RATE_LIMITED, retry_after=error.retry_after))

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status == 400 and request.mimetype == "application/json":
            return api_error_response(CodedError(INVALID_JSON))
        if status in HTTP_CODES:
            return api_error_response(CodedError(HTTP_CODES[status]))
        return api_error_response(CodedError(HTTP_ERROR, error.description or None), status=status)

    @app.errorhandler(CryptoError)
    async def integrity_failed(error: CryptoError) -> Response:
        # The log names the row (table, column, id); the answer names nothing stored, and no
        # plaintext exists to leak: the value did not open.
        log.error("stored value failed its integrity check on %s %s: %s", request.method, request.path, error)
        return api_error_response(CodedError(INTEGRITY_FAILED))

    @app.errorhandler(Exception)
    async def unexpected(error: Exception) -> Response:
        storage = storage_failure(error)
        if storage is not None:
            log.error("storage failure on %s %s: %s", request.method, request.path, error)
            return api_error_response(storage)
        log.error("unhandled %s on %s %s", type(error).__name__, request.method, request.path)
        return api_error_response(CodedError(INTERNAL))


def describe_validation_error(error: Any) -> str:
    if isinstance(error, ValidationError):
        parts = []
        for item in error.errors()[:5]:
            where = ".".join(str(p) for p in item.get("loc", ())) or "body"
            parts.append(f"{where}: {item.get('msg', 'invalid')}")
        return "The request body is not valid: " + "; ".join(parts) + "."
    if isinstance(error, TypeError):
        return "The request body must be a JSON object sent as application/json."
    return f"The request is not valid: {error}."


def _install_headers(app: Quart, allowed_origins: list[str]) -> None:
    @app.after_request
    async def security_headers(response: Response) -> Response:
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers["Referrer-Policy"] = "no-referrer"
        response.headers.setdefault("Content-Security-Policy", JSON_CSP)
        if response.mimetype != "text/event-stream":
            response.headers["Cache-Control"] = "no-store"
        expires = (g.get("access_claims") or {}).get("exp")
        if isinstance(expires, (int, float)) and not isinstance(expires, bool):
            response.headers[ACCESS_EXPIRES_HEADER] = str(int(expires))
        if (request.method == "OPTIONS"
                and request.headers.get("Access-Control-Request-Private-Network") == "true"
                and (request.headers.get("Origin") or "").lower() in allowed_origins):
            response.headers["Access-Control-Allow-Private-Network"] = "true"
        return response
