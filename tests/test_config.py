"""The config file: defaults, and errors that name the key."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from privchat.config import ConfigError, config_from_dict, documented_defaults, load_config
from tests.support.server import write_config


@pytest.mark.parametrize("raw, key", [
    ({"server": {"prot": 1}}, "server.prot"),
    ({"modle": {}}, "modle"),
    ({"server": {"port": "abc"}}, "server.port"),
    ({"server": {"port": 70000}}, "server.port"),
    ({"generation": {"temperature": 5}}, "generation.temperature"),
    ({"storage": {"encryption": "rot13"}}, "storage.encryption"),
    ({"server": {"allowed_origins": ["example.com"]}}, "server.allowed_origins[0]"),
    ({"access": {"team_domain": "https://t.cloudflareaccess.com"}}, "access.aud"),
    ({"model": {"enabled": "yes"}}, "model.enabled"),
])
def test_invalid_values_are_named(raw: dict, key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_from_dict(raw)
    assert str(caught.value).startswith(key), caught.value


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com", "10.0.0.1"])
def test_non_loopback_hosts_are_refused(host: str) -> None:
    with pytest.raises(ConfigError, match="not a loopback address"):
        config_from_dict({"server": {"host": host}})


@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "::1", "localhost"])
def test_loopback_hosts_are_accepted(host: str) -> None:
    assert config_from_dict({"server": {"host": host}}).host == host


def test_serve_refuses_a_public_bind_with_an_explanation(tmp_path: Path) -> None:
    config = write_config(tmp_path)
    result = subprocess.run([sys.executable, "-m", "privchat", "--config", str(config), "serve", "--host", "0.0.0.0"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "server.host" in result.stderr and "loopback" in result.stderr and "tunnel" in result.stderr


def test_serve_refuses_an_unknown_key_in_the_file(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump({"server": {"port": 8765, "bind_all": True}}))
    result = subprocess.run([sys.executable, "-m", "privchat", "--config", str(path), "serve"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "server.bind_all: unknown key" in result.stderr


def test_missing_explicit_file_and_bad_yaml(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("server: [unclosed\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)


def test_documented_defaults_load_back_as_the_defaults(tmp_path: Path) -> None:
    text = documented_defaults()
    assert "# Address to listen on" in text
    path = tmp_path / "defaults.yaml"
    path.write_text(text)
    assert load_config(path).values == config_from_dict({}).values


def test_sections_are_frozen_views_read_by_name() -> None:
    """config.auth.pairing_code_ttl_seconds: a misspelt key names its section; nothing can change a value."""
    import pytest

    from privchat.config import SCHEMA, config_from_dict

    config = config_from_dict({"auth": {"pairing_code_ttl_seconds": 120}})
    assert config.auth.pairing_code_ttl_seconds == 120 and config.server.port == SCHEMA["server"]["port"].default
    with pytest.raises(AttributeError, match="section 'auth' has no key 'pairing_ttl'"):
        config.auth.pairing_ttl  # noqa: B018
    with pytest.raises(AttributeError, match="read-only"):
        config.auth.pairing_code_ttl_seconds = 1
    with pytest.raises(TypeError):
        config.server["port"] = 1  # type: ignore[index]
    assert set(config.model) == set(SCHEMA["model"])  # every declared key, nothing else
