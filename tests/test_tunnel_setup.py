"""`privchat tunnel setup` on flags alone: valid, exact, idempotent output; bad input refused by name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from privchat.config import load_config
from privchat.commands.cli import main
from privchat.tunnel.validate import validate_cloudflared_file

UUID = "6ff42ae2-765d-4adf-8112-31c55c1551ef"
AUD = "0123456789abcdef" * 4
REPO = Path(__file__).resolve().parents[1]
SAMPLE_HEADERS = """\
/*
  X-Content-Type-Options: nosniff

/chat/*
  Content-Security-Policy: default-src 'self'; script-src 'self'; connect-src 'self' http://127.0.0.1:8765 http://localhost:8765; img-src 'self' data:; frame-ancestors 'none'
  Referrer-Policy: no-referrer
"""


def run_cli(*argv: str) -> int:
    """The real CLI in this process: its exit code (failures are reported by cli.main's one path)."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    return int(exited.value.code or 0)


@pytest.fixture
def env(tmp_path: Path) -> dict[str, Path]:
    pages = tmp_path / "pages"
    (pages / "public" / "chat").mkdir(parents=True)
    repo_headers = REPO / "pages" / "_headers"
    (pages / "_headers").write_text(repo_headers.read_text() if repo_headers.exists() else SAMPLE_HEADERS, encoding="utf-8")
    repo_json = REPO / "pages" / "public" / "chat" / "config.json"
    (pages / "public" / "chat" / "config.json").write_text(
        repo_json.read_text() if repo_json.exists() else '{\n  "apiOrigin": "http://127.0.0.1:8765"\n}\n', encoding="utf-8")
    creds = tmp_path / "dotcloudflared" / f"{UUID}.json"
    creds.parent.mkdir()
    creds.write_text('{"AccountTag":"x","TunnelSecret":"not-a-real-secret","TunnelID":"%s"}' % UUID, encoding="utf-8")
    os.utime(creds, (1_600_000_000, 1_600_000_000))
    return {"root": tmp_path, "pages": pages, "creds": creds, "config": tmp_path / "cfg" / "config.yaml",
            "cloudflared": tmp_path / "cf" / "cloudflared.yml"}


def setup_args(env: dict[str, Path], **overrides: str) -> list[str]:
    flags = {"--site-url": "https://example.com", "--api-hostname": "chat-api.example.com", "--tunnel": UUID,
             "--credentials-file": str(env["creds"]), "--team-name": "myteam", "--aud": AUD,
             "--cloudflared-config": str(env["cloudflared"]), "--pages-dir": str(env["pages"])}
    flags.update(overrides)
    argv = ["--config", str(env["config"]), "tunnel", "setup", "--yes"]
    return argv + [f"{flag}={value}" for flag, value in flags.items()]  # '=' so values may start with '-'


def snapshot(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_setup_writes_exact_valid_configs(env: dict[str, Path]) -> None:
    assert run_cli(*setup_args(env)) == 0

    assert validate_cloudflared_file(env["cloudflared"]) == []
    cloudflared = yaml.safe_load(env["cloudflared"].read_text())
    assert cloudflared == {
        "tunnel": UUID,
        "credentials-file": str(env["creds"]),
        "ingress": [
            {"hostname": "chat-api.example.com", "service": "http://127.0.0.1:8766",
             "originRequest": {"access": {"required": True, "teamName": "myteam", "audTag": [AUD]}}},
            {"service": "http_status:404"},
        ],
    }
    assert env["cloudflared"].read_text().startswith("# cloudflared config for privchat")

    config = load_config(env["config"])
    assert config.access.team_domain == "https://myteam.cloudflareaccess.com"
    assert config.access.aud == [AUD]
    assert config.access.public_hostnames == ["chat-api.example.com"]
    # The page gets an origin of its own by default, on the API's site; the main site is kept for re-runs.
    assert config.site.url == "https://chat.example.com"
    assert config.site.main_url == "https://example.com"
    assert config.api_origin == "https://chat-api.example.com"
    assert config.tunnel_config_file == env["cloudflared"]
    assert (config.port, config.tunnel_port) == (8765, 8766)
    # Only the page's origin may call the API: the local development origins are dropped.
    assert config.server.allowed_origins == ["https://chat.example.com"]

    assert json.loads((env["pages"] / "public" / "chat" / "config.json").read_text())["apiOrigin"] == "https://chat-api.example.com"
    csp = [line for line in (env["pages"] / "_headers").read_text().splitlines() if "connect-src" in line and not line.lstrip().startswith("#")]
    assert csp and all("connect-src 'self' https://chat-api.example.com;" in line for line in csp)
    assert not any("127.0.0.1:8765" in line or "localhost:8765" in line for line in csp)
    assert list(env["pages"].glob("_headers.bak-*")), "the changed _headers must be backed up"


def test_second_run_changes_nothing(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*setup_args(env)) == 0
    before = snapshot(env["root"])
    capsys.readouterr()
    assert run_cli(*setup_args(env)) == 0
    assert snapshot(env["root"]) == before  # same bytes, no new backup
    assert "Nothing changed" in capsys.readouterr().out
    # Without any value flags, the earlier answers are reused and still nothing changes.
    assert run_cli("--config", str(env["config"]), "tunnel", "setup", "--yes", "--pages-dir", str(env["pages"])) == 0
    assert snapshot(env["root"]) == before


def test_owner_keys_are_kept(env: dict[str, Path]) -> None:
    env["config"].parent.mkdir(parents=True)
    env["config"].write_text("# mine\nserver:\n  port: 9000\n  allowed_origins: [http://127.0.0.1:5173]\n"
                             "generation:\n  temperature: 0.2\n", encoding="utf-8")
    assert run_cli(*setup_args(env)) == 0
    config = load_config(env["config"])
    assert config.port == 9000 and config.generation.temperature == 0.2
    assert config.server.allowed_origins == ["https://chat.example.com"]
    assert yaml.safe_load(env["cloudflared"].read_text())["ingress"][0]["service"] == "http://127.0.0.1:8766"
    assert list(env["config"].parent.glob("config.yaml.bak-*"))


def test_keep_local_keeps_loopback_connect_src(env: dict[str, Path]) -> None:
    assert run_cli(*setup_args(env), "--keep-local") == 0
    assert load_config(env["config"]).server.allowed_origins == [
        "https://chat.example.com", "http://127.0.0.1:8764", "http://localhost:8764"]
    line = next(l for l in (env["pages"] / "_headers").read_text().splitlines() if "connect-src" in l and not l.lstrip().startswith("#"))
    assert "connect-src 'self' https://chat-api.example.com http://127.0.0.1:8765 http://localhost:8765;" in line


def test_json_summary(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*setup_args(env), "--json") == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["ok"] is True and summary["changed"] is True
    assert {f["what"] for f in summary["files"]} >= {"cloudflared config", "privchat config"}
    steps = "\n".join(summary["next_steps"])
    for command in ("cloudflared tunnel login", f"cloudflared tunnel create {UUID}",
                    f"cloudflared tunnel route dns {UUID} chat-api.example.com",
                    f"cloudflared --config {env['cloudflared']} tunnel run",
                    f"sudo cloudflared --config {env['cloudflared']} service install", "pair"):
        assert command in steps
    # Access answers the preflights: the exact values for its CORS settings, what the page sends.
    assert summary["access_cors"] == {
        "allowed_origins": ["https://chat.example.com"], "allow_credentials": True,
        "allowed_methods": ["GET", "POST", "PUT", "PATCH", "DELETE"],
        "allowed_headers": ["Content-Type", "Content-Digest", "Signature", "Signature-Input", "Privchat-E2E"], "max_age": 600}
    assert "do NOT turn on 'Bypass OPTIONS requests to origin'" in steps
    assert summary["main_site_redirects"] == ["/chat https://chat.example.com/chat/ 302",
                                              "/chat/* https://chat.example.com/chat/:splat 302"]
    assert summary["inputs"]["page_origin"] == "https://chat.example.com" and summary["inputs"]["tunnel_port"] == 8766


def test_printed_summary_shows_access_cors_values(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*setup_args(env)) == 0
    out = capsys.readouterr().out
    assert "Access-Control-Allow-Origin:       https://chat.example.com" in out
    assert "Access-Control-Allow-Headers:      Content-Type, Content-Digest, Signature, Signature-Input" in out
    assert "Bypass OPTIONS requests to origin: off" in out
    assert "/chat/* https://chat.example.com/chat/:splat 302" in out


def test_page_on_the_main_site_says_what_it_trusts(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*setup_args(env, **{"--page-origin": "https://example.com"})) == 0
    out = capsys.readouterr().out
    assert "every script served there" in out and "_redirects" not in out
    config = load_config(env["config"])
    assert config.site.url == "https://example.com"
    assert config.server.allowed_origins == ["https://example.com"]


def test_page_on_another_site_is_warned_about(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*setup_args(env, **{"--page-origin": "https://privchat.pages.dev"})) == 0
    assert "not on the same site" in capsys.readouterr().out


def test_credentials_file_untouched(env: dict[str, Path]) -> None:
    before = (env["creds"].read_bytes(), env["creds"].stat().st_mtime_ns, env["creds"].stat().st_atime_ns)
    assert run_cli(*setup_args(env)) == 0
    assert run_cli(*setup_args(env)) == 0
    after = (env["creds"].read_bytes(), env["creds"].stat().st_mtime_ns)
    assert after == before[:2]
    assert env["creds"].stat().st_atime_ns == before[2], "setup must not even read the credentials"
    assert not list(env["creds"].parent.glob("*.bak-*"))


def test_missing_credentials_file_is_a_warning(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    missing = env["root"] / "nope" / f"{UUID}.json"
    assert run_cli(*setup_args(env, **{"--credentials-file": str(missing)})) == 0
    assert "does not exist yet" in capsys.readouterr().out
    assert not missing.exists()


def test_missing_pages_dir_is_skipped(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*setup_args(env, **{"--pages-dir": str(env["root"] / "no-pages")})) == 0
    assert "pages directory not found" in capsys.readouterr().out


def test_missing_headers_is_reported_and_config_json_created(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    (env["pages"] / "_headers").unlink()
    (env["pages"] / "public" / "chat" / "config.json").unlink()
    assert run_cli(*setup_args(env)) == 0
    out = capsys.readouterr().out
    assert "_headers is missing" in out
    assert json.loads((env["pages"] / "public" / "chat" / "config.json").read_text()) == {"apiOrigin": "https://chat-api.example.com"}


@pytest.mark.parametrize(("flag", "value", "field", "words"), [
    ("--api-hostname", "chat-api.example.com:443", "--api-hostname", "port"),
    ("--api-hostname", "https://chat-api.example.com", "--api-hostname", "scheme"),
    ("--site-url", "http://example.com", "--site-url", "https"),
    ("--site-url", "https://example.com/chat", "--site-url", "origin only"),
    ("--aud", "   ", "--aud", "empty"),
    ("--team-name", "my_team", "--team-name", "DNS label"),
    ("--team-name", "-team", "--team-name", "DNS label"),
    ("--tunnel-port", "70000", "--tunnel-port", "65535"),
    ("--tunnel-port", "8765", "--tunnel-port", "server.port"),
    ("--page-origin", "http://chat.example.com", "--page-origin", "https"),
])
def test_bad_input_refused_by_name(env: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                   flag: str, value: str, field: str, words: str) -> None:
    assert run_cli(*setup_args(env, **{flag: value})) == 2
    err = capsys.readouterr().err
    assert field in err and words in err, err
    assert not env["config"].exists() and not env["cloudflared"].exists(), "refused input must write nothing"
    assert (env["pages"] / "_headers").read_text().count("http://127.0.0.1:8765") >= 1


def test_team_domain_form_is_accepted(env: dict[str, Path]) -> None:
    assert run_cli(*setup_args(env, **{"--team-name": "https://MyTeam.cloudflareaccess.com"})) == 0
    assert yaml.safe_load(env["cloudflared"].read_text())["ingress"][0]["originRequest"]["access"]["teamName"] == "myteam"


def test_refuses_to_write_over_credentials(env: dict[str, Path]) -> None:
    assert run_cli(*setup_args(env, **{"--cloudflared-config": str(env["creds"])})) == 2
    assert json.loads(env["creds"].read_text())["TunnelID"] == UUID


def test_missing_value_without_terminal_names_the_flag(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    argv = [arg for arg in setup_args(env) if not arg.startswith("--aud=")]
    assert run_cli(*argv) == 2
    assert "--aud" in capsys.readouterr().err


def test_top_level_access_in_existing_cloudflared_config_is_dropped(env: dict[str, Path]) -> None:
    env["cloudflared"].parent.mkdir(parents=True)
    env["cloudflared"].write_text(yaml.safe_dump({
        "tunnel": UUID, "credentials-file": str(env["creds"]), "loglevel": "info",
        "access": {"required": True, "teamName": "myteam", "audTag": [AUD]},
        "ingress": [{"hostname": "files.example.com", "service": "http://127.0.0.1:9000"}, {"service": "http_status:404"}],
    }), encoding="utf-8")
    assert run_cli(*setup_args(env)) == 0
    data = yaml.safe_load(env["cloudflared"].read_text())
    assert "access" not in data and data["loglevel"] == "info"
    assert [r.get("hostname") for r in data["ingress"]] == ["chat-api.example.com", "files.example.com", None]
    assert validate_cloudflared_file(env["cloudflared"]) == []


def test_interactive_asks_for_missing_and_reasks_bad_answers() -> None:
    from privchat.commands.tunnel_setup_text import gather_input

    answers = iter(["http://example.com", "https://example.com", "chat-api.example.com:8443", "chat-api.example.com", "",
                    UUID, "", "my team", "myteam", "", AUD, ""])
    said: list[str] = []
    inp = gather_input({}, {}, interactive=True, keep_local=False, ask=lambda _prompt: next(answers), say=said.append)
    assert (inp.site_url, inp.api_host, inp.page_origin, inp.team_name, inp.aud, inp.tunnel_port) == (
        "https://example.com", "chat-api.example.com", "https://chat.example.com", "myteam", AUD, 8766)
    assert inp.credentials_file == Path(f"~/.cloudflared/{UUID}.json").expanduser()  # default offered for a UUID tunnel
    assert any("--site-url" in s for s in said) and any("--api-hostname" in s for s in said)
    assert any("--team-name" in s for s in said) and any("--aud is required" in s for s in said)


@pytest.mark.parametrize(("rule", "words"), [
    ({"hostname": "old.example.com", "service": "http://127.0.0.1:8766"}, "ingress[1]: reaches privchat (port 8766) without Cloudflare Access"),
    ({"hostname": "old.example.com", "service": "http://localhost:8765",
      "originRequest": {"access": {"required": True, "teamName": "myteam", "audTag": [AUD]}}}, "local port 8765"),
    ({"hostname": "rewrite.example.com", "service": "http://127.0.0.1:8766",
      "originRequest": {"httpHostHeader": "127.0.0.1", "access": {"required": True, "teamName": "myteam", "audTag": [AUD]}}},
     "httpHostHeader"),
])
def test_existing_cloudflared_rule_that_opens_privchat_is_refused(env: dict[str, Path], capsys: pytest.CaptureFixture[str],
                                                                  rule: dict[str, Any], words: str) -> None:
    env["cloudflared"].parent.mkdir(parents=True)
    existing = yaml.safe_dump({"tunnel": UUID, "credentials-file": str(env["creds"]),
                               "ingress": [rule, {"service": "http_status:404"}]})
    env["cloudflared"].write_text(existing, encoding="utf-8")
    before = snapshot(env["root"])
    assert run_cli(*setup_args(env)) == 2
    err = capsys.readouterr().err
    assert words in err and "nothing was written" in err, err
    assert snapshot(env["root"]) == before, "a refused setup must change nothing"
    # `tunnel validate` says the same about the file as it stands.
    assert run_cli("tunnel", "validate", str(env["cloudflared"])) == 1  # default ports: 8765 local, 8766 tunnel
    assert words.split(":")[-1].strip() in capsys.readouterr().out


def test_top_level_host_header_in_existing_config_is_refused(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    env["cloudflared"].parent.mkdir(parents=True)
    env["cloudflared"].write_text(yaml.safe_dump({"tunnel": UUID, "credentials-file": str(env["creds"]),
                                                  "originRequest": {"httpHostHeader": "localhost"},
                                                  "ingress": [{"service": "http_status:404"}]}), encoding="utf-8")
    before = snapshot(env["root"])
    assert run_cli(*setup_args(env)) == 2
    assert "top-level originRequest.httpHostHeader" in capsys.readouterr().err
    assert snapshot(env["root"]) == before


# --- a remotely-managed tunnel --------------------------------------------------

def remote_args(env: dict[str, Path], *extra: str) -> list[str]:
    flags = {"--site-url": "https://example.com", "--api-hostname": "chat-api.example.com", "--team-name": "myteam",
             "--aud": AUD, "--pages-dir": str(env["pages"])}
    return ["--config", str(env["config"]), "tunnel", "setup", "--remote", "--yes",
            *(f"{flag}={value}" for flag, value in flags.items()), *extra]


def test_remote_prints_what_to_enter_in_the_dashboard_and_writes_no_cloudflared_config(
        env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*remote_args(env)) == 0
    out = capsys.readouterr().out
    assert not env["cloudflared"].exists() and not list(env["root"].rglob("cloudflared.yml")), "no cloudflared config in this mode"
    assert "cloudflared config:" not in out and "No cloudflared config was written" in out
    # The public hostname, its service (tunnel.port) and Access, as the dashboard asks for them.
    assert "Public Hostname > Add a public hostname for chat-api.example.com:" in out
    lines = [" ".join(line.split()) for line in out.splitlines()]
    for line in ("Subdomain: chat-api", "Domain: example.com", "Path: (empty)", "Service Type: HTTP",
                 "Service URL: 127.0.0.1:8766", "Access > Protect with Access: on", "Access > Team name: myteam",
                 f"Access > AUD Tag: {AUD}", "HTTP Settings > HTTP Host Header: (empty: never set one for privchat)"):
        assert line in lines, (line, out)
    assert "http://127.0.0.1:8766" in out and "127.0.0.1:8765" not in out.split("Cloudflare Access >")[0]
    # The Access application's CORS values, as setup always computes them.
    assert "Access-Control-Allow-Origin:       https://chat.example.com" in out
    assert "Bypass OPTIONS requests to origin: off" in out
    assert "cloudflared tunnel run --token" in out and "service install" in out
    assert "cloudflared tunnel create" not in out and "tunnel route dns" not in out  # the dashboard does these
    # privchat and the page are set up as for a local tunnel; tunnel.config_file is not set.
    config = load_config(env["config"])
    assert config.access.team_domain == "https://myteam.cloudflareaccess.com" and config.access.aud == [AUD]
    assert config.access.public_hostnames == ["chat-api.example.com"] and config.tunnel_port == 8766
    assert config.server.allowed_origins == ["https://chat.example.com"]
    assert "config_file" not in (yaml.safe_load(env["config"].read_text()).get("tunnel") or {})
    assert json.loads((env["pages"] / "public" / "chat" / "config.json").read_text())["apiOrigin"] == "https://chat-api.example.com"


def test_remote_json_summary(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*remote_args(env, "--json", "--tunnel-port=9766")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["inputs"]["mode"] == "remote" and "tunnel" not in summary["inputs"]
    assert summary["dashboard"] == {
        "public_hostname": "chat-api.example.com", "subdomain": "chat-api", "domain": "example.com", "path": "",
        "service": "http://127.0.0.1:9766", "service_type": "HTTP", "service_url": "127.0.0.1:9766", "http_host_header": "",
        "access": {"protect_with_access": True, "team_name": "myteam", "aud_tag": AUD}}
    assert summary["access_cors"]["allowed_origins"] == ["https://chat.example.com"]
    assert {f["what"] for f in summary["files"]} == {"privchat config", "page API config", "page CSP (_headers)"}
    # Run again: nothing changes.
    assert run_cli(*remote_args(env, "--json", "--tunnel-port=9766")) == 0
    assert json.loads(capsys.readouterr().out)["changed"] is False


def test_remote_refuses_local_tunnel_flags(env: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(*remote_args(env, f"--tunnel={UUID}")) == 2
    assert "--remote" in capsys.readouterr().err and not env["config"].exists()
