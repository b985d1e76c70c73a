"""Documents that cannot drift: what SECURITY.md and the README promise is checked against the code.

* every test SECURITY.md cites as evidence exists (a renamed or deleted test would leave a claim
  without proof);
* every command in the README's command table, and every flag it shows, is in the CLI parser;
* every config key has a documentation line (`privchat config defaults` prints it);
* every error code in the backend's catalogue (``errors.py``) has words in the page's describe.js, or
  a reason why the server's own sentence is enough; every code the page names is in the catalogue or
  is the page's own; every code SECURITY.md, docs/E2E.md and the README name is in it, with its status.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from privchat.commands.cli import build_parser
from privchat.config import SCHEMA
from privchat.errors import CATALOGUE

REPO = Path(__file__).resolve().parents[1]
TESTS = REPO / "tests"


def defined_tests() -> dict[str, set[str]]:
    """{file name: names of the test functions defined in it}, for every test file."""
    found: dict[str, set[str]] = {}
    for path in TESTS.rglob("test_*.py"):
        found[path.name] = set(re.findall(r"^\s*def (test_\w+)\(", path.read_text(encoding="utf-8"), re.M))
    return found


def cited_tests(text: str) -> list[tuple[str | None, str]]:
    """(file or None, test name) for every test a document cites in backticks.

    `file.py::test_x` names its file; `::test_x` and a bare `test_x` belong to the file named last before it.
    """
    cited: list[tuple[str | None, str]] = []
    current: str | None = None
    for span in re.findall(r"`([^`]+)`", text):
        for file_name, name in re.findall(r"(?:(test_\w+\.py))?(?:::)?(test_\w+)?", span):
            if file_name:
                current = file_name
            if name and not name.endswith(".py") and not (file_name and not name):
                cited.append((current, name))
    return cited


def test_every_test_security_md_cites_exists() -> None:
    tests = defined_tests()
    everywhere = set().union(*tests.values())
    cited = cited_tests((REPO / "SECURITY.md").read_text(encoding="utf-8"))
    assert len(cited) > 50, "the citation parser found almost nothing: it is broken, not the document"
    missing = [f"{file}::{name}" for file, name in cited
               if name not in (tests.get(file or "", set()) or everywhere) and name not in everywhere]
    assert not missing, f"SECURITY.md cites tests that do not exist: {missing}"
    files = {file for file, _name in cited if file}
    assert not files - set(tests), f"SECURITY.md cites test files that do not exist: {files - set(tests)}"


def test_the_citation_check_can_fail() -> None:
    """The negative control: a made-up citation is reported."""
    tests = defined_tests()
    everywhere = set().union(*tests.values())
    cited = cited_tests("| claim | `test_security_access.py::test_that_was_never_written` |")
    assert cited == [("test_security_access.py", "test_that_was_never_written")]
    assert cited[0][1] not in everywhere


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def readme_commands() -> list[tuple[list[str], list[str]]]:
    """([command words], [flags]) for every `privchat …` in the README's command table."""
    rows = []
    for line in (REPO / "README.md").read_text(encoding="utf-8").splitlines():
        if not line.startswith("| `privchat "):
            continue
        first_cell = line.replace("\\|", "\x00").split("|")[1].replace("\x00", "|")
        for usage in re.findall(r"`privchat ([^`]+)`", first_cell):
            words = [w for w in usage.split() if re.fullmatch(r"[a-z][a-z0-9-]*", w)]
            flags = re.findall(r"--[a-z][a-z-]*", usage)
            alternatives = [w.split("|") for w in usage.split() if re.fullmatch(r"[a-z]+(\|[a-z]+)+", w) and not w.startswith("-")]
            for choice in (alternatives[0] if alternatives else [None]):
                rows.append(([*words, choice] if choice else words, flags))
    return rows


def cli_problems(rows: list[tuple[list[str], list[str]]]) -> list[str]:
    problems = []
    for words, flags in rows:
        parser, unknown = build_parser(), None
        for word in words:
            children = subcommands(parser)
            if word not in children:
                unknown = word if children else None  # a group's unknown word; else an argument (ID, NAME)
                break
            parser = children[word]
        if unknown is not None or parser.prog == "privchat":
            problems.append(f"`privchat {' '.join(words)}`: no such command")
            continue
        known = {option for action in parser._actions for option in action.option_strings}
        problems += [f"`privchat {' '.join(words)}`: no flag {flag}" for flag in flags if flag not in known]
    return problems


def test_every_readme_command_and_flag_is_in_the_cli() -> None:
    rows = readme_commands()
    assert len(rows) >= 12, rows
    assert not cli_problems(rows)


def test_the_cli_check_can_fail() -> None:
    assert cli_problems([(["history", "shred"], []), (["doctor"], ["--fix-everything"])]) == [
        "`privchat history shred`: no such command", "`privchat doctor`: no flag --fix-everything"]


@pytest.mark.parametrize("section", sorted(SCHEMA))
def test_every_config_key_has_a_doc_line(section: str) -> None:
    for key, (_default, _validator, doc) in SCHEMA[section].items():
        assert isinstance(doc, str) and len(doc) >= 15 and doc.rstrip().endswith((".", ")")), f"{section}.{key}: {doc!r}"


# --- the error codes the page switches on ---------------------------------------------------------------

PAGE_SRC = REPO / "pages" / "src"
CODE = r"([a-z][a-z0-9]*(?:_[a-z0-9]+)+)"  # error codes are snake_case with at least one underscore; states and kinds are one word


def page_error_codes() -> set[str]:
    """Codes the page compares an error against: isCode(err, "x"), .code === "x", and case "x" labels."""
    codes: set[str] = set()
    for path in PAGE_SRC.rglob("*.js"):
        text = path.read_text(encoding="utf-8")
        codes |= set(re.findall(rf'isCode\(\w+, "{CODE}"\)', text))
        codes |= set(re.findall(rf'code [!=]== "{CODE}"', text))
        codes |= set(re.findall(rf'case "{CODE}":', text))
    return codes


def page_made_codes() -> set[str]:
    """Codes the page gives its own findings (a seal that did not hold: E2EError in lib/errors.js)."""
    codes: set[str] = set()
    for path in PAGE_SRC.rglob("*.js"):
        codes |= set(re.findall(rf'E2EError\(\s*"{CODE}"', path.read_text(encoding="utf-8")))
    return codes


def described_codes(text: str) -> tuple[set[str], set[str]]:
    """(codes, prefixes) describe.js gives words to: isCode(err, "x"), === "x", case "x": labels, the
    keys of its sentence tables (E2E_TEXT, VOICE_TEXT), and /^prefix_/.test(err.code) families."""
    codes = set(re.findall(rf'(?:isCode\(\w+, |[!=]==\s*|case\s+)"{CODE}"', text))
    codes |= set(re.findall(rf"^\s+{CODE}:", text, re.M))
    prefixes = set(re.findall(r"/\^([a-z][a-z0-9_]*_)/\.test\(\w+\.code\)", text))
    return codes, prefixes


# Codes describe.js does not name, on purpose: its default (inline, pairing) shows the server's own
# sentence, because no sentence of the page would say more. Each group says why that is enough.
SHOWN_AS_SENT: dict[str, tuple[str, ...]] = {
    "a request the page built wrong, or a route failed: a defect, not the owner's to fix; the sentence says "
    "which rule, and the page offers Retry": (
        "bad_request", "invalid_json", "method_not_allowed", "timeout", "unsupported_media_type", "http_error",
        "internal", "invalid_request", "invalid_public_key", "event_id_invalid", "not_found"),
    "a signature the page made wrong or that changed on the way: the sentence names the check that failed, "
    "and a new request is signed anew": (
        "signature_missing", "signature_malformed", "signature_tag", "signature_algorithm", "signature_components",
        "digest_missing", "digest_mismatch", "signature_expired", "signature_invalid", "replayed"),
    "the server's own setup refuses the request: the sentence names the config key or the command that fixes it": (
        "origin_not_allowed", "host_not_allowed"),
    "pairing refused for a reason the owner reads as the server words it (the pairing form's default)": (
        "device_exists", "invalid_device_name"),
    "a reply the server could not start or finish: the sentence names the model, the model server or the disk "
    "(shown inline, or under the reply as a stream's error)": (
        "shutting_down", "generation_failed", "storage_failed", "integrity_failed", "storage_full",
        "storage_unavailable", "model_loading", "model_unavailable", "too_many_attachments", "image_not_supported",
        "upstream_error", "upstream_cut", "upstream_timeout", "upstream_unreachable", "upstream_bad_reply",
        "upstream_key_missing", "upstream_not_private"),
}


def catalogue_codes() -> set[str]:
    return {entry.code for entry in CATALOGUE}


def unknown_to_the_page(catalogue: set[str], described: set[str], prefixes: set[str],
                        shown_as_sent: dict[str, tuple[str, ...]]) -> list[str]:
    """What is wrong between the catalogue and describe.js, in words: a code the page neither names
    nor lists as shown as sent, and an allow-list entry that is stale or named after all."""
    allowed = [code for codes in shown_as_sent.values() for code in codes]
    problems = [f"{code}: the page has no words for it and SHOWN_AS_SENT does not say why"
                for code in sorted(catalogue) if code not in described and not code.startswith(tuple(prefixes))
                and code not in allowed]
    problems += [f"{code}: in SHOWN_AS_SENT but not in the catalogue" for code in sorted(set(allowed) - catalogue)]
    problems += [f"{code}: in SHOWN_AS_SENT but describe.js names it" for code in sorted(set(allowed) & described)]
    problems += [f"{code}: in SHOWN_AS_SENT twice" for code in sorted({c for c in allowed if allowed.count(c) > 1})]
    return problems


def test_every_code_in_the_catalogue_is_known_to_the_page() -> None:
    """describe.js is the page's one writer of sentences: each code the server can send has its words
    there, a family's (attachment_*), or a reason in SHOWN_AS_SENT why the server's sentence is enough."""
    described, prefixes = described_codes((PAGE_SRC / "lib" / "describe.js").read_text(encoding="utf-8"))
    assert len(described) >= 30 and "attachment_" in prefixes, (described, prefixes)  # the scanner found what it should
    assert not unknown_to_the_page(catalogue_codes(), described, prefixes, SHOWN_AS_SENT)


def test_every_error_code_the_page_switches_on_is_in_the_catalogue() -> None:
    """Every code the page names (describe.js, and any test of an error's code elsewhere) is one the
    server can send, or one the page gives its own findings (E2EError: a seal that did not hold)."""
    described, _prefixes = described_codes((PAGE_SRC / "lib" / "describe.js").read_text(encoding="utf-8"))
    page, made_by_page = page_error_codes() | described, page_made_codes()
    assert len(page) >= 30 and {"device_revoked", "pairing_locked", "queue_full"} <= page, page
    assert {"e2e_event_invalid", "e2e_truncated", "e2e_unsealed_refusal"} <= made_by_page
    stray = page - catalogue_codes() - made_by_page
    assert not stray, f"the page handles codes the server never sends: {sorted(stray)}"


def test_the_catalogue_checks_can_fail() -> None:
    """The negative controls: a code added to the catalogue without words on the page is reported, and
    so is an allow-list entry that is stale or named by the page; a code only the page knows is found."""
    described, prefixes = described_codes('if (isCode(err, "queue_full")) x(); switch (err.code) { case "pairing_used": }\n'
                                          '  speech_busy: "…",\nif (/^attachment_/.test(err.code)) y();')
    assert described == {"queue_full", "pairing_used", "speech_busy"} and prefixes == {"attachment_"}
    shown = {"a reason": ("internal", "made_up_stale", "queue_full")}
    assert unknown_to_the_page({"queue_full", "pairing_used", "speech_busy", "attachment_empty", "internal",
                                "made_up_new"}, described, prefixes, shown) == [
        "made_up_new: the page has no words for it and SHOWN_AS_SENT does not say why",
        "made_up_stale: in SHOWN_AS_SENT but not in the catalogue",
        "queue_full: in SHOWN_AS_SENT but describe.js names it"]
    assert "made_up_code" not in catalogue_codes() and {"device_revoked", "replayed", "internal"} <= catalogue_codes()


# --- the codes the documents name -----------------------------------------------------------------------

DOCUMENTS = ("SECURITY.md", "docs/E2E.md", "README.md")


def documented_codes(text: str) -> list[tuple[int | None, str]]:
    """(status or None, code) for every error code a document names with its status (401 `replayed`,
    `409 e2e_key_retired`) or in the first column of a table headed "code"."""
    named: list[tuple[int | None, str]] = []
    for status, code in re.findall(r"\b([1-5]\d\d),? `([a-z][a-z0-9_]*)`", text):
        named.append((int(status), code))
    for status, code in re.findall(r"`([1-5]\d\d) ([a-z][a-z0-9_]*)`", text):
        named.append((int(status), code))
    in_table = False
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else []
        if not cells:
            in_table = False
        elif cells[0] == "code":
            in_table = True
        elif in_table and re.fullmatch(r"`[a-z][a-z0-9_]*`", cells[0]):
            named.append((None, cells[0].strip("`")))
    return named


def documentation_problems(named: list[tuple[int | None, str]], catalogue: dict[str, int]) -> list[str]:
    problems = [f"`{code}`: not in the catalogue" for _status, code in named if code not in catalogue]
    problems += [f"{status} `{code}`: the catalogue says {catalogue[code]}" for status, code in named
                 if code in catalogue and status is not None and status != catalogue[code]]
    return problems


@pytest.mark.parametrize("document", DOCUMENTS)
def test_every_code_a_document_names_is_in_the_catalogue_with_its_status(document: str) -> None:
    named = documented_codes((REPO / document).read_text(encoding="utf-8"))
    assert named or document == "README.md", f"{document}: the scanner found no codes"
    assert not documentation_problems(named, {entry.code: entry.status for entry in CATALOGUE})


def test_the_document_check_can_fail() -> None:
    text = "A replay is 401 `replayed`; a revoked device `401 device_revoked`.\n\n| code | when |\n| --- | --- |\n| `made_up` | never |\n"
    named = documented_codes(text)
    assert named == [(401, "replayed"), (401, "device_revoked"), (None, "made_up")]
    assert documentation_problems(named, {entry.code: entry.status for entry in CATALOGUE}) == [
        "`made_up`: not in the catalogue", "401 `device_revoked`: the catalogue says 403"]


# --- tests/README.md maps every test file to a part of the product -------------------------------

def unmapped_test_files(map_text: str, files: list[str]) -> list[str]:
    """The test files the map names neither by name nor by a glob in backticks (``test_storage_*.py``)."""
    from fnmatch import fnmatch

    named = re.findall(r"`([^`\s]+\.(?:py|js))`", map_text)
    return [f for f in files if not any(fnmatch(f, pattern) for pattern in named)]


def _test_files() -> list[str]:
    python = [p.name for p in (REPO / "tests").glob("test_*.py")]
    browser = [p.name for p in (REPO / "tests" / "browser").glob("test_*.py")]
    page = [p.name for p in (REPO / "pages" / "test").glob("*.test.js")]
    return sorted(python + browser + page)


def test_every_test_file_is_in_the_map() -> None:
    files = _test_files()
    assert len(files) > 80, "the test files were not found: the check is broken, not the map"
    missing = unmapped_test_files((REPO / "tests" / "README.md").read_text(encoding="utf-8"), files)
    assert not missing, f"tests/README.md does not say which part of the product these cover: {missing}"


def test_the_map_check_can_fail() -> None:
    """The negative control: a file the map does not name is reported; a glob covers its files."""
    text = "| history | `test_history.py`, `test_storage_*.py` |"
    assert unmapped_test_files(text, ["test_history.py", "test_storage_kdf.py", "test_new_thing.py"]) == ["test_new_thing.py"]
