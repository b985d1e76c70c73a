"""The cloudflared validator refuses what cloudflared refuses (and the silent top-level access block)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from privchat.commands.tunnel_setup import SetupInput, build_cloudflared_config
from privchat.tunnel.validate import PrivchatPorts, validate_cloudflared_config, validate_cloudflared_file
from tests.support.cloudflared import require_cloudflared

REPO = Path(__file__).resolve().parents[1]
UUID = "6ff42ae2-765d-4adf-8112-31c55c1551ef"
AUD = "0123456789abcdef" * 4


def valid() -> dict[str, Any]:
    return {
        "tunnel": UUID,
        "credentials-file": f"/home/me/.cloudflared/{UUID}.json",
        "ingress": [
            {"hostname": "chat-api.example.com", "service": "http://127.0.0.1:8766",
             "originRequest": {"access": {"required": True, "teamName": "myteam", "audTag": [AUD]}}},
            {"service": "http_status:404"},
        ],
    }


def errors_for(change) -> list[str]:
    data = copy.deepcopy(valid())
    change(data)
    return validate_cloudflared_config(data)


def assert_one_error(errors: list[str], field: str, words: str) -> None:
    assert len(errors) == 1, errors
    assert errors[0].startswith(field), errors
    assert words in errors[0], errors


def test_valid_config_passes() -> None:
    assert validate_cloudflared_config(valid()) == []


def test_no_ingress() -> None:
    assert_one_error(errors_for(lambda d: d.pop("ingress")), "ingress", "no ingress rules")
    assert_one_error(errors_for(lambda d: d.update(ingress=[])), "ingress", "no ingress rules")


def test_catch_all_not_last() -> None:
    def change(d):
        d["ingress"].insert(0, {"service": "http_status:404"})
    assert_one_error(errors_for(change), "ingress[0]", "only the last rule may match everything")


def test_wildcard_star_rule_is_catch_all_too() -> None:
    def change(d):
        d["ingress"].insert(0, {"hostname": "*", "service": "http://127.0.0.1:9"})
    assert_one_error(errors_for(change), "ingress[0]", "only the last rule")


def test_last_rule_not_catch_all() -> None:
    assert_one_error(errors_for(lambda d: d["ingress"].pop()), "ingress[0]", "last ingress rule must match every request")
    assert_one_error(errors_for(lambda d: d["ingress"][1].update(path="^/api")), "ingress[1]", "last ingress rule")


# One field of the first rule set to what cloudflared refuses: one error, naming that field. The
# controls beside them (a leading wildcard, the services cloudflared accepts, a path regex RE2 takes)
# differ in the value alone and pass.
@pytest.mark.parametrize(("field", "value", "words"), [
    pytest.param("hostname", "chat-api.example.com:443", "contains a port", id="port-in-hostname"),
    pytest.param("hostname", "*.*.example.com", "at most one wildcard", id="two-wildcards"),
    pytest.param("hostname", "chat.*.example.com", "leading '*.'", id="wildcard-inside"),
    pytest.param("hostname", "*chat.example.com", "leading '*.'", id="wildcard-without-dot"),
    pytest.param("service", "http://127.0.0.1:8765/api", "has a path", id="service-with-path"),
    # cloudflared refuses even a bare trailing slash (the URL's path is "/").
    pytest.param("service", "http://127.0.0.1:8765/", "has a path", id="service-with-trailing-slash"),
    pytest.param("service", "127.0.0.1:8765", "needs a scheme and a host", id="service-ip-without-scheme"),
    pytest.param("service", "localhost:8765", "needs a scheme and a host", id="service-name-without-scheme"),
    pytest.param("path", "^/api/(", "not a valid regular expression", id="bad-path-regex"),
    pytest.param("path", "^/(?!admin)", "RE2", id="path-regex-python-accepts-but-go-does-not"),
])
def test_first_rule_field_cloudflared_refuses(field: str, value: str, words: str) -> None:
    assert_one_error(errors_for(lambda d: d["ingress"][0].update({field: value})), f"ingress[0].{field}", words)


def test_leading_wildcard_is_fine() -> None:
    assert errors_for(lambda d: d["ingress"][0].update(hostname="*.example.com")) == []


def test_good_path_regex() -> None:
    assert errors_for(lambda d: d["ingress"][0].update(path=r"^/api/.*\.json$")) == []


@pytest.mark.parametrize("service", ["http_status:abc", "http_status:99", "http_status:1000", "http_status:"])
def test_bad_http_status(service: str) -> None:
    assert_one_error(errors_for(lambda d: d["ingress"][1].update(service=service)), "ingress[1].service", "not a valid HTTP status")


@pytest.mark.parametrize("service", ["https://localhost:8443", "tcp://127.0.0.1:22", "ssh://localhost:22", "rdp://localhost:3389",
                                     "unix:/run/privchat.sock", "unix+tls:/run/x.sock", "hello_world", "http_status:503", "bastion"])
def test_services_cloudflared_accepts(service: str) -> None:
    assert errors_for(lambda d: d["ingress"][0].update(service=service)) == []


def test_missing_service() -> None:
    assert_one_error(errors_for(lambda d: d["ingress"][0].pop("service")), "ingress[0].service", "missing")


def test_aud_tag_without_team_name() -> None:
    assert_one_error(errors_for(lambda d: d["ingress"][0]["originRequest"]["access"].pop("teamName")),
                     "ingress[0].originRequest.access.teamName", "cannot be blank")


def test_top_level_access_is_an_error() -> None:
    def change(d):
        d["access"] = d["ingress"][0]["originRequest"].pop("access")
    assert_one_error(errors_for(change), "access", "ignores an access block at the top level")


def test_access_directly_under_rule_is_an_error() -> None:
    def change(d):
        d["ingress"][0]["access"] = d["ingress"][0].pop("originRequest")["access"]
    assert_one_error(errors_for(change), "ingress[0].access", "belongs under ingress[0].originRequest.access")


def test_missing_tunnel() -> None:
    assert_one_error(errors_for(lambda d: d.pop("tunnel")), "tunnel", "missing")


def test_missing_credentials_file() -> None:
    assert_one_error(errors_for(lambda d: d.pop("credentials-file")), "credentials-file", "missing")


def test_not_a_mapping() -> None:
    assert validate_cloudflared_config(["ingress"])[0].startswith("The cloudflared config must be a mapping")


def test_example_template_with_placeholders_filled(tmp_path: Path) -> None:
    text = (REPO / "tunnel" / "config.example.yml").read_text(encoding="utf-8")
    assert validate_cloudflared_config(yaml.safe_load(text)), "unfilled placeholders must be reported"
    for placeholder, value in {"<TUNNEL-UUID>": UUID, "<HOME>": "/home/me", "<API-HOST>": "chat-api.example.com",
                               "<TEAM-NAME>": "myteam", "<AUD-TAG>": AUD}.items():
        text = text.replace(placeholder, value)
    filled = tmp_path / "config.yml"
    filled.write_text(text, encoding="utf-8")
    assert validate_cloudflared_file(filled) == []


def setup_generated() -> dict[str, Any]:
    inp = SetupInput(site_url="https://example.com", api_host="chat-api.example.com", page_origin="https://chat.example.com",
                     tunnel=UUID, credentials_file=Path(f"/home/me/.cloudflared/{UUID}.json"), team_name="myteam", aud=AUD,
                     tunnel_port=8766)
    data, _notes = build_cloudflared_config(inp, "127.0.0.1")
    return data


def test_setup_generated_config_passes() -> None:
    assert validate_cloudflared_config(setup_generated(), PORTS) == []


# --- rules that reach privchat ----------------------------------------------------------------------

PORTS = PrivchatPorts(local=8765, tunnel=8766)


def privchat_errors(change) -> list[str]:
    data = copy.deepcopy(valid())
    change(data)
    return validate_cloudflared_config(data, PORTS)


def test_valid_config_passes_privchat_rules() -> None:
    assert validate_cloudflared_config(valid(), PORTS) == []


@pytest.mark.parametrize("where", ["rule", "top"])
def test_http_host_header_on_a_privchat_rule_is_refused(where: str) -> None:
    def change(data: dict[str, Any]) -> None:
        target = data["ingress"][0]["originRequest"] if where == "rule" else data.setdefault("originRequest", {})
        target["httpHostHeader"] = "127.0.0.1"
    errors = privchat_errors(change)
    assert_one_error(errors, "ingress[0]", "httpHostHeader")
    assert ("top-level" in errors[0]) == (where == "top")


def test_http_host_header_on_another_service_is_fine() -> None:
    def change(data: dict[str, Any]) -> None:
        data["ingress"].insert(1, {"hostname": "files.example.com", "service": "http://127.0.0.1:9000",
                                   "originRequest": {"httpHostHeader": "files.internal"}})
    assert privchat_errors(change) == []


@pytest.mark.parametrize("service", ["http://127.0.0.1:8766", "http://localhost:8766", "http://[::1]:8766", "http://0.0.0.0:8766"])
def test_second_rule_to_privchat_without_access_is_refused(service: str) -> None:
    def change(data: dict[str, Any]) -> None:
        data["ingress"].insert(1, {"hostname": "other.example.com", "service": service})
    assert_one_error(privchat_errors(change), "ingress[1]", "without Cloudflare Access")


def test_access_inherited_from_the_top_level_origin_request_counts() -> None:
    """cloudflared merges the top-level originRequest into each rule, access included."""
    def change(data: dict[str, Any]) -> None:
        data["originRequest"] = {"access": data["ingress"][0].pop("originRequest")["access"]}
    assert privchat_errors(change) == []


def test_access_not_required_is_refused() -> None:
    def change(data: dict[str, Any]) -> None:
        data["ingress"][0]["originRequest"]["access"]["required"] = False
    assert_one_error(privchat_errors(change), "ingress[0]", "without Cloudflare Access")


def test_rule_to_the_local_port_is_refused() -> None:
    def change(data: dict[str, Any]) -> None:
        data["ingress"][0]["service"] = "http://127.0.0.1:8765"
    assert_one_error(privchat_errors(change), "ingress[0].service", "local port 8765")


# --- the real cloudflared agrees -----------------------------------------------------------------------

def write_yaml(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def test_real_cloudflared_validates_the_generated_config(tmp_path: Path) -> None:
    import subprocess

    tools = require_cloudflared()
    config = write_yaml(tmp_path / "cloudflared.yml", setup_generated())
    validate = subprocess.run([tools.cloudflared, "tunnel", "--config", str(config), "ingress", "validate"],
                              capture_output=True, text=True, timeout=60)
    assert validate.returncode == 0, validate.stdout + validate.stderr
    rule = subprocess.run([tools.cloudflared, "tunnel", "--config", str(config), "ingress", "rule",
                           "https://chat-api.example.com/api/health"], capture_output=True, text=True, timeout=60)
    assert rule.returncode == 0, rule.stdout + rule.stderr
    assert "Matched rule #0" in rule.stdout and "service: http://127.0.0.1:8766" in rule.stdout, rule.stdout
    other = subprocess.run([tools.cloudflared, "tunnel", "--config", str(config), "ingress", "rule",
                            "https://else.example.com/"], capture_output=True, text=True, timeout=60)
    assert "http_status:404" in other.stdout, other.stdout  # the control: other hosts get the catch-all
    # And the negative control: real cloudflared refuses what our validator refuses for its own reasons.
    broken = setup_generated()
    broken["ingress"].reverse()
    bad = subprocess.run([tools.cloudflared, "tunnel", "--config", str(write_yaml(tmp_path / "bad.yml", broken)),
                          "ingress", "validate"], capture_output=True, text=True, timeout=60)
    assert bad.returncode != 0 and validate_cloudflared_config(broken, PORTS)


def test_unreadable_and_non_yaml_files(tmp_path: Path) -> None:
    assert "cannot read" in validate_cloudflared_file(tmp_path / "absent.yml")[0]
    broken = tmp_path / "broken.yml"
    broken.write_text("ingress: [\n", encoding="utf-8")
    assert "not valid YAML" in validate_cloudflared_file(broken)[0]
