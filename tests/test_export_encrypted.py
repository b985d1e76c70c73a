"""`privchat history export --encrypt` / `--recipient` and `history import` of an age file.

The export is an age file (pyrage): to a passphrase ($PRIVCHAT_EXPORT_PASSPHRASE or a prompt) or to
age X25519 public keys. The standard `age` tool opens it; `history import` opens it again (with the
passphrase, or `--identity FILE`), and a wrong passphrase or identity imports nothing.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import pyrage
import yaml

REPO = Path(__file__).resolve().parents[1]
ENV = "PRIVCHAT_EXPORT_PASSPHRASE"
AGE = shutil.which("age")

CONVERSATIONS = [
    {"id": "conv-colours", "title": "Colours", "title_source": "first_message", "current_leaf": "m2",
     "created_at": 1_700_000_000.0, "updated_at": 1_700_000_010.0,
     "messages": [
         {"id": "m1", "parent_id": None, "role": "user", "content": "Name three colours. 🎨", "status": "complete",
          "created_at": 1_700_000_000.0},
         {"id": "m2", "parent_id": "m1", "role": "assistant", "content": "Red, green and blue.", "status": "complete",
          "created_at": 1_700_000_001.0, "completed_at": 1_700_000_002.0, "finish_reason": "stop"},
     ]},
    {"id": "conv-sums", "title": "Sums", "title_source": "owner", "current_leaf": "m4",
     "created_at": 1_700_000_100.0, "updated_at": 1_700_000_110.0,
     "messages": [
         {"id": "m3", "parent_id": None, "role": "user", "content": "What is 2+2?", "status": "complete",
          "created_at": 1_700_000_100.0},
         {"id": "m4", "parent_id": "m3", "role": "assistant", "content": "4", "status": "complete",
          "created_at": 1_700_000_101.0, "completed_at": 1_700_000_102.0},
     ]},
]


def _config(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "config.yaml"
    path.write_text(yaml.safe_dump({"storage": {"data_dir": str(folder / "data"), "key_file": str(folder / "keys" / "privchat.key")}}))
    return path


def cli(config: Path, *args: str, env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k != ENV}
    result = subprocess.run([sys.executable, "-m", "privchat", "--config", str(config), *args], capture_output=True, text=True,
                            env={**base, **(env or {})}, cwd=REPO, timeout=120, stdin=subprocess.DEVNULL)
    if check and result.returncode != 0:
        raise AssertionError(f"privchat {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def _seeded(tmp_path: Path) -> Path:
    """A database holding CONVERSATIONS (imported from a plain JSON export)."""
    config = _config(tmp_path / "source")
    plain = tmp_path / "seed.json"
    plain.write_text(json.dumps({"format": "privchat-export", "version": 2, "exported_at": 1_700_000_200.0,
                                 "conversations": CONVERSATIONS}))
    result = json.loads(cli(config, "history", "import", str(plain), "--json").stdout)
    assert result == {"imported_conversations": 2, "imported_messages": 4, "skipped": 0}
    return config


def _plain_export(config: Path) -> dict:
    return json.loads(cli(config, "history", "export").stdout)


def _comparable(export: dict) -> list[dict]:
    return sorted(export["conversations"], key=lambda c: c["id"])


@pytest.mark.slow
def test_an_export_to_an_age_key_opens_with_the_age_tool_and_imports_back(tmp_path: Path) -> None:
    if AGE is None:
        pytest.skip("the `age` binary is missing: install it with `apt-get install age` (scripts/install --test does)")
    config = _seeded(tmp_path)
    expected = _plain_export(config)
    identity = pyrage.x25519.Identity.generate()
    other = pyrage.x25519.Identity.generate()
    out = tmp_path / "export.age"
    done = cli(config, "history", "export", "--encrypt", "--recipient", str(identity.to_public()),
               "--recipient", str(other.to_public()), "-o", str(out))
    assert "2 conversation(s)" in done.stderr and "age" in done.stderr
    data = out.read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n-> X25519 ")
    assert b"Red, green and blue" not in data and b"Colours" not in data
    # Readable by its owner only, and never written over.
    assert stat.S_IMODE(out.stat().st_mode) == 0o600, oct(out.stat().st_mode)
    again = cli(config, "history", "export", "--recipient", str(identity.to_public()), "-o", str(out), check=False)
    assert again.returncode == 1 and "already exists" in again.stderr
    assert out.read_bytes() == data

    # The standard age tool opens it with either key, and the JSON is the export.
    for key in (identity, other):
        key_file = tmp_path / f"key-{id(key)}.txt"
        key_file.write_text(f"# created: by the test\n{key}\n")
        opened = subprocess.run([AGE, "--decrypt", "-i", str(key_file), str(out)], capture_output=True, timeout=60)
        assert opened.returncode == 0, opened.stderr
        decrypted = json.loads(opened.stdout)
        assert decrypted["format"] == "privchat-export"
        assert _comparable(decrypted) == _comparable(expected)

    # Import into another database: a wrong identity imports nothing, the right one restores everything.
    target = _config(tmp_path / "target")
    wrong = tmp_path / "wrong.txt"
    wrong.write_text(f"{pyrage.x25519.Identity.generate()}\n")
    refused = cli(target, "history", "import", str(out), "--identity", str(wrong), check=False)
    assert refused.returncode == 1
    assert "identity does not open it" in refused.stderr and "Nothing was imported" in refused.stderr, refused.stderr
    assert _plain_export(target)["conversations"] == []
    no_identity = cli(target, "history", "import", str(out), check=False)
    assert no_identity.returncode == 1 and "--identity" in no_identity.stderr
    key_file = tmp_path / "identity.txt"
    key_file.write_text(f"# public key: {identity.to_public()}\n{identity}\n")
    imported = json.loads(cli(target, "history", "import", str(out), "--identity", str(key_file), "--json").stdout)
    assert imported == {"imported_conversations": 2, "imported_messages": 4, "skipped": 0}
    assert _comparable(_plain_export(target)) == _comparable(expected)


@pytest.mark.slow
def test_a_passphrase_export_round_trips_and_a_wrong_passphrase_imports_nothing(tmp_path: Path) -> None:
    config = _seeded(tmp_path)
    expected = _plain_export(config)
    out = tmp_path / "export.json.age"
    cli(config, "history", "export", "--encrypt", "-o", str(out), env={ENV: "correct horse battery staple"})
    data = out.read_bytes()
    assert data.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert b"What is 2+2" not in data
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    assert _comparable(json.loads(pyrage.passphrase.decrypt(data, "correct horse battery staple"))) == _comparable(expected)

    target = _config(tmp_path / "target")
    wrong = cli(target, "history", "import", str(out), env={ENV: "wrong horse"}, check=False)
    assert wrong.returncode == 1
    assert "passphrase is wrong" in wrong.stderr and "Nothing was imported" in wrong.stderr, wrong.stderr
    assert _plain_export(target)["conversations"] == []
    # No passphrase and no terminal to ask on: a sentence naming the variable, nothing imported.
    unasked = cli(target, "history", "import", str(out), check=False)
    assert unasked.returncode == 1 and ENV in unasked.stderr
    imported = json.loads(cli(target, "history", "import", str(out), "--json", env={ENV: "correct horse battery staple"}).stdout)
    assert imported == {"imported_conversations": 2, "imported_messages": 4, "skipped": 0}
    assert _comparable(_plain_export(target)) == _comparable(expected)


@pytest.mark.slow
def test_encrypted_export_refusals_write_nothing(tmp_path: Path) -> None:
    config = _seeded(tmp_path)
    out = tmp_path / "never.age"
    bad_key = cli(config, "history", "export", "--recipient", "age1notakey", "-o", str(out), check=False)
    assert bad_key.returncode == 1 and "not an age public key" in bad_key.stderr
    unasked = cli(config, "history", "export", "--encrypt", "-o", str(out), check=False)
    assert unasked.returncode == 1 and ENV in unasked.stderr
    empty = cli(config, "history", "export", "--encrypt", "-o", str(out), env={ENV: ""}, check=False)
    assert empty.returncode == 1 and "empty" in empty.stderr
    assert not out.exists()
    # A plain export with --identity is refused rather than silently ignored.
    plain = tmp_path / "plain.json"
    cli(config, "history", "export", "-o", str(plain))
    with_identity = cli(config, "history", "import", str(plain), "--identity", str(plain), check=False)
    assert with_identity.returncode == 1 and "not an age-encrypted file" in with_identity.stderr
