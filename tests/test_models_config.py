"""The models config: the list, the short form, the old single model, and where upstreams may point."""

from __future__ import annotations

import pytest

from privchat.config import ConfigError, config_from_dict
from privchat.llm.specs import model_specs


def test_the_old_model_section_is_one_embedded_model() -> None:
    config = config_from_dict({"model": {"n_ctx": 1024, "name": "mine"}})
    (spec,) = model_specs(config)
    assert spec.engine == "embedded" and spec.name == "mine" and spec.n_ctx == 1024


def test_the_short_form_of_the_design_is_accepted() -> None:
    config = config_from_dict({
        "models": [{"name": "smollm2", "engine": "embedded"},
                   {"name": "big", "engine": "openai", "base_url": "http://127.0.0.1:8080/v1", "model": "qwen",
                    "api_key_file": "~/up.key", "parallel": 4}],
        "default_model": "big",
    })
    specs = model_specs(config)
    assert [s.name for s in specs] == ["smollm2", "big"] and config.models.default == "big"
    assert specs[1].parallel == 4 and specs[1].model == "qwen" and "~" not in str(specs[1].api_key_file)


@pytest.mark.parametrize(("models", "words"), [
    ([{"name": "x", "engine": "openai", "base_url": "http://8.8.8.8/v1"}], "8.8.8.8 is not loopback"),
    ([{"name": "x", "engine": "openai", "base_url": "http://192.168.1.20:8000/v1"}], "add 192.168.1.20 to models.upstream_hosts"),
    ([{"name": "x", "engine": "openai", "base_url": "http://gpu.example.com/v1"}], "gpu.example.com is not loopback"),
    ([{"name": "x", "engine": "openai"}], "base_url: required"),
    ([{"name": "x", "engine": "vllm"}], "expected one of embedded, openai"),
    ([{"name": "x"}, {"name": "x"}], "is used twice"),
    ([{"name": "x", "engine": "embedded", "base_url": "http://127.0.0.1/v1"}], "unknown key for an embedded model"),
    ([{"name": "x", "engine": "openai", "base_url": "ftp://127.0.0.1/v1"}], "expected an http(s) URL"),
    ([{"name": "x", "engine": "openai", "base_url": "http://127.0.0.1/v1", "parallel": 0}], "parallel: expected an integer"),
])
def test_bad_model_entries_stop_start_up_with_a_sentence(models: list, words: str) -> None:
    with pytest.raises(ConfigError) as refused:
        config_from_dict({"models": {"list": models}})
    assert words in str(refused.value)


def test_a_private_host_the_owner_names_is_allowed_a_public_one_never() -> None:
    config = config_from_dict({"models": {"list": [{"name": "gpu", "engine": "openai", "base_url": "http://192.168.1.20:8000/v1"}],
                                          "upstream_hosts": ["192.168.1.20"]}})
    assert model_specs(config)[0].base_url == "http://192.168.1.20:8000/v1"
    with pytest.raises(ConfigError, match="public address"):
        config_from_dict({"models": {"upstream_hosts": ["1.1.1.1"]}})


def test_the_default_must_be_a_listed_model() -> None:
    with pytest.raises(ConfigError, match="'nope' is not one of the models"):
        config_from_dict({"models": {"list": [{"name": "a"}], "default": "nope"}})


def test_doctor_checks_every_model(tmp_path) -> None:
    import json
    import socket

    from tests.support.server import run_cli, write_config

    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    try:
        config = write_config(tmp_path, {"models": {"list": [
            {"name": "local", "engine": "embedded", "path": str(tmp_path / "missing.gguf")},
            {"name": "gpu", "engine": "openai", "base_url": f"http://127.0.0.1:{closed.getsockname()[1]}/v1",
             "connect_timeout_seconds": 1}]}})
        report = json.loads(run_cli(config, "doctor", "--json", check=False).stdout)
    finally:
        closed.close()
    checks = {c["name"]: c for c in report["checks"]}
    assert not checks["model local"]["ok"] and "does not exist" in checks["model local"]["detail"]
    assert checks["model gpu"]["warning"] and "is not answering" in checks["model gpu"]["detail"]
