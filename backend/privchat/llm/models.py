"""The configured models, their state, and which of the embedded ones are in memory.

Each model of ``models.list`` has an engine: a ``ModelEngine`` (a GGUF in this process) or an
``UpstreamEngine`` (an OpenAI-compatible server). Replies wait for a slot in their model's lane: the
embedded models share one (one process decodes one reply at a time on the machine's cores), each
upstream has ``parallel`` of them. An embedded model is loaded when a reply for it gets the slot,
in a worker thread (health and other devices keep answering); at most ``models.max_loaded`` stay
resident, the least recently used is unloaded first. A model that cannot fit in the memory there is,
counting what unloading would free, is refused with a sentence before anything is unloaded, so the
current model stays.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Callable, Union

from ..config import Config
from ..errors import MODEL_LOADING, MODEL_TOO_BIG, MODEL_UNAVAILABLE, MODEL_UNKNOWN, CodedError
from .engine import ModelEngine
from .engine_types import EngineStatus, ModelUnavailable
from .model_files import available_memory_bytes
from .specs import default_model_name, model_specs
from .upstream import UpstreamEngine

log = logging.getLogger(__name__)

Engine = Union[ModelEngine, UpstreamEngine]


class Lane:
    """Slots for replies and the replies waiting for one, in order."""

    def __init__(self, slots: int) -> None:
        self.slots = slots
        self.slot = asyncio.Semaphore(slots)
        self.waiting = 0
        self.queue: list[Any] = []

    @property
    def busy(self) -> bool:
        return self.slot.locked()


class ModelRegistry:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.specs = model_specs(config)
        self.engines: dict[str, Engine] = {}
        for spec in self.specs:
            if spec.engine == "embedded":
                engine: Engine = ModelEngine(config, spec)
            else:
                engine = UpstreamEngine(config, spec)
            self.engines[spec.name] = engine
        self.default = default_model_name(config, self.specs)
        for name, engine in self.engines.items():
            if isinstance(engine, ModelEngine) and name != self.default and engine.status.state == "loading":
                engine.status.state = "unloaded"  # loaded when a reply asks for it
        self.max_loaded = config.models.max_loaded
        self._embedded_lane = Lane(1)
        self._lanes = {name: (self._embedded_lane if isinstance(e, ModelEngine) else Lane(e.parallel))
                       for name, e in self.engines.items()}
        self._switch = asyncio.Lock()

    # What health and older callers read: the default model -----------------------------------------
    @property
    def default_engine(self) -> Engine:
        return self.engines[self.default]

    @property
    def status(self) -> EngineStatus:
        return self.default_engine.status

    @property
    def model_config(self) -> Any:
        return self.config.model

    def start_loading(self) -> None:
        for name, engine in self.engines.items():
            if name == self.default or isinstance(engine, UpstreamEngine):
                engine.start_loading()

    async def wait_loaded(self) -> EngineStatus:
        return await self.default_engine.wait_loaded()

    def close(self) -> None:
        for engine in self.engines.values():
            engine.close()

    # Choosing ---------------------------------------------------------------------------------
    def get(self, name: str | None) -> Engine:
        engine = self.engines.get(name or self.default)
        if engine is None:
            raise CodedError(MODEL_UNKNOWN, name=str(name), known=", ".join(self.engines))
        return engine

    def lane(self, name: str) -> Lane:
        return self._lanes[name]

    def context_size(self, name: str | None) -> int | None:
        """The model's context in tokens: measured once loaded, else its config (an embedded model's
        ``model.n_ctx`` by default); None for an upstream whose entry names no ``n_ctx``."""
        engine = self.get(name)
        if engine.status.n_ctx:
            return int(engine.status.n_ctx)
        if engine.spec.n_ctx:
            return int(engine.spec.n_ctx)
        return int(self.config.model.n_ctx) if isinstance(engine, ModelEngine) else None

    def lanes(self) -> list[Lane]:
        return list({id(lane): lane for lane in self._lanes.values()}.values())

    # Titles: a model already in memory ---------------------------------------------------------------
    def title_engine(self, preferred: str | None = None) -> ModelEngine:
        """The embedded model a title is written with: the one that wrote the reply when it is in
        memory, else the one used last. A title never loads or unloads a model (a reply would wait)."""
        loaded = [e for e in self.engines.values() if isinstance(e, ModelEngine) and e.loaded]
        if not loaded:
            raise ModelUnavailable(MODEL_UNAVAILABLE, "No embedded model is in memory to write a title with.")
        wanted = self.engines.get(preferred) if preferred else None
        return wanted if wanted in loaded else max(loaded, key=lambda e: e.last_used)  # type: ignore[return-value]

    def generate(self, system_prompt: str, turns: list[dict[str, str]], params: Any, on_token: Callable[[str], None],
                 cancel: Any, model: str | None = None) -> Any:
        """Blocking (a thread): a title, with ``title_engine(model)``."""
        return self.title_engine(model).generate(system_prompt, turns, params, on_token, cancel)

    def check(self, name: str) -> None:
        """Refuse now what cannot work: an unknown model, one in error, one that does not fit in memory."""
        engine = self.get(name)
        if isinstance(engine, UpstreamEngine):
            return
        state = engine.status.state
        if state == "loading" and not engine.switch_load:
            raise ModelUnavailable(MODEL_LOADING)
        if state in ("error", "disabled"):
            raise ModelUnavailable(MODEL_UNAVAILABLE, reason=engine.status.public_error)
        if state == "unloaded":
            problem = self._fit_problem(engine)
            if problem is not None:
                raise ModelUnavailable(MODEL_TOO_BIG, problem)

    def _evictable(self, keep: ModelEngine) -> list[ModelEngine]:
        """Loaded embedded models to unload before ``keep`` loads, least recently used first."""
        loaded = sorted((e for e in self.engines.values() if isinstance(e, ModelEngine) and e.loaded and e is not keep),
                        key=lambda e: e.last_used)
        extra = len(loaded) + 1 - self.max_loaded
        return loaded[:max(0, extra)]

    def _fit_problem(self, engine: ModelEngine) -> str | None:
        """Why ``engine`` cannot load now, counting what unloading would free; its context counts once
        measured (``ensure_loaded`` measures it first; a request's early check uses what is known)."""
        free = available_memory_bytes()
        freed = sum(e.memory_bytes() for e in self._evictable(engine))
        problem = engine.fit_problem(None if free is None else free + freed)
        if problem and "does not fit" in problem:
            return (f"The model {engine.status.name} does not fit in the memory available, counting the model it would "
                    f"replace ({problem}); the current model stays loaded.")
        return problem

    async def ensure_loaded(self, name: str, on_loading: Callable[[], None] | None = None) -> Engine:
        """For a reply holding its lane's slot: the model in memory, unloading the least recently used if needed.

        ``on_loading`` is called once when the reply has to wait for the model to load (a switch, or
        the server still starting), so the page can say why no token comes yet.
        """
        engine = self.get(name)
        if isinstance(engine, UpstreamEngine):
            return engine
        async with self._switch:
            if engine.status.state == "unloaded":
                await asyncio.to_thread(engine.measure_context)
                problem = self._fit_problem(engine)
                if problem is not None:
                    raise ModelUnavailable(MODEL_TOO_BIG, problem)
                for old in self._evictable(engine):
                    await old.unload()
                engine.switch_load = True
                log.info("loading model %s", engine.status.name)
                engine.start_loading()
        if engine.status.state == "loading" and on_loading is not None:
            on_loading()
        try:
            status = await engine.wait_loaded()
        finally:
            engine.switch_load = False
        if status.state != "ready":
            engine.ensure_ready()  # raises the sentence of the state it is in
        engine.last_used = time.monotonic()
        return engine

    # Listing ----------------------------------------------------------------------------------
    async def describe(self) -> dict[str, Any]:
        upstreams = [e for e in self.engines.values() if isinstance(e, UpstreamEngine)]
        if upstreams:
            await asyncio.gather(*(e.probe() for e in upstreams))
        models = []
        for name, engine in self.engines.items():
            status = engine.status
            error = engine.detail if isinstance(engine, UpstreamEngine) else status.public_error
            models.append({"name": name, "engine": engine.engine, "label": engine.spec.label, "state": status.state,
                           "error": error, "n_ctx": status.n_ctx or engine.spec.n_ctx, "vision": engine.spec.sees})
        return {"default": self.default, "models": models}
