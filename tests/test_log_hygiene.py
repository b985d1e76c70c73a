"""Logs never contain message text, keys, pairing codes or signatures."""

from __future__ import annotations

import json

import pytest

from tests.support.server import SignedClient
from tests.support.signing import TestDevice

SECRET = "the vault combination is 31-41-59 and my dog is Bartholomew"


def test_server_and_cli_output_hold_no_secrets(server_factory) -> None:
    server = server_factory(name="logs")
    pairing = json.loads(server.cli("pair", "--json").stdout)
    device = TestDevice()
    client = SignedClient(server.url, device)
    assert client.register(pairing["code"], "log test").status_code == 201
    signed = device.sign("GET", "/api/history")
    events = client.chat(SECRET, max_tokens=24)
    reply = "".join(data["text"] for kind, data in events if kind == "token")
    assert client.put("/api/settings", {"system_prompt": SECRET + " prompt"}).status_code == 200
    # Failures get logged too: a bad signature, a wrong code, a broken body.
    assert client.register("WRONG-CODE1", "x").status_code in (403, 409)
    assert client.get("/api/history", sign={"tag": "other"}).status_code == 401
    server.stop()
    log = server.log()
    assert "listening on" in log  # control: the log was captured
    key = (server.folder / "keys" / "privchat.key").read_text().strip()
    for needle in (SECRET, "Bartholomew", reply.strip()[:30], pairing["code"], pairing["code"].replace("-", ""),
                   key, signed["Signature"][6:40], device.public_jwk["x"]):
        assert needle and needle not in log, f"{needle!r} appears in the server log"


# A real server whose decoding fails, started through this launcher (the test's own code: nothing in
# privchat has a hook for it). "BREAK-DECODE" appends a token id past the vocabulary, so llama.cpp
# itself refuses the batch and llama-cpp-python raises; "QUOTE-TEXT" raises, after a few real
# tokens, an error whose message and cause quote the prompt and the reply so far, the worst a
# binding could do. llama.cpp's own log is switched on, so its messages land in the log too.
FAILING_SERVER = '''
import sys
from llama_cpp import _logger as llama_log
from privchat.llm import engine
from privchat.commands.cli import main

load, fit, generate = engine.ModelEngine._load_blocking, engine.ModelEngine.fit, engine.ModelEngine.generate

def load_then_log(self):
    load(self)
    llama_log.set_verbose(True)

def fit_then_break(self, system_prompt, turns, max_tokens):
    fitted = fit(self, system_prompt, turns, max_tokens)
    if "BREAK-DECODE" in turns[-1]["content"]:
        fitted.tokens.append(self._llm.n_vocab() + 7)
    return fitted

def generate_then_quote(self, system_prompt, turns, params, on_token, cancel):
    said = []
    def token(text):
        said.append(text)
        on_token(text)
        if "QUOTE-TEXT" in turns[-1]["content"] and len(said) >= 6:
            cause = ValueError("while decoding " + repr(turns[-1]["content"]))
            raise RuntimeError("llama_decode failed for prompt %r after %r" % (system_prompt, "".join(said))) from cause
    return generate(self, system_prompt, turns, params, token, cancel)

engine.ModelEngine._load_blocking = load_then_log
engine.ModelEngine.fit = fit_then_break
engine.ModelEngine.generate = generate_then_quote
sys.argv = ["privchat", *sys.argv[1:]]
main()
'''


@pytest.mark.slow
def test_a_failing_generation_logs_no_prompt_or_reply_text(tmp_path) -> None:
    """Negative control: before the change the log held the QUOTE-TEXT error's
    message and its cause (system prompt, the message and the partial reply) through the
    traceback that ``log.exception`` wrote."""
    import subprocess
    import sys

    from tests.support.server import REPO, LiveServer, write_config

    folder = tmp_path / "failing"
    server = LiveServer(folder, write_config(folder))
    launcher = folder / "failing_server.py"
    launcher.write_text(FAILING_SERVER, encoding="utf-8")
    log_file = server.log_path.open("ab")
    server.process = subprocess.Popen([sys.executable, str(launcher), "--config", str(server.config_path), "serve"],
                                      stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO)
    try:
        import httpx
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(server.url + "/api/health", timeout=2).json()["model"]["state"] == "ready":
                    break
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(0.2)
        client = server.pair()
        system_prompt = "You are Sir Reginald, keeper of the amber lighthouse"
        assert client.put("/api/settings", {"system_prompt": system_prompt}).status_code == 200
        broken = client.chat(SECRET + " BREAK-DECODE", max_tokens=16)
        assert broken[-1][0] == "error" and broken[-1][1]["code"] == "generation_failed", broken
        quoted = client.chat("tell me about Bartholomew the marmalade cat QUOTE-TEXT", max_tokens=24)
        assert quoted[-1][0] == "error", quoted
        partial = "".join(data["text"] for kind, data in quoted if kind == "token")
        assert len(partial.strip()) >= 4, quoted
    finally:
        server.stop()
        log_file.close()
    log = server.log()
    # Controls: both failures were logged, with where they happened, and llama.cpp's own messages too.
    assert log.count("decoding failed for") == 2, log
    assert "RuntimeError" in log and "ValueError" in log and "engine.py" in log, log
    assert "invalid token" in log, log  # llama.cpp's own line about the refused batch
    for needle in (SECRET, "Bartholomew", "marmalade", "Sir Reginald", "amber lighthouse", partial.strip()[:20]):
        assert needle not in log, f"{needle!r} appears in the log:\n{log}"
