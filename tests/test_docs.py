"""Documents that cannot drift: what SECURITY.md and the README promise is checked against the code.

* every test SECURITY.md cites as evidence exists (a renamed or deleted test would leave a claim
  without proof);
* every command in the README's command table, and every flag it shows, is in the CLI parser;
* every config key has a documentation line (`privchat config defaults` prints it).
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

import pytest

from privchat.commands.cli import build_parser
from privchat.config import SCHEMA

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
BACKEND = REPO / "backend" / "privchat"
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


def server_error_codes() -> set[str]:
    """Codes the backend can answer with: (status, "code") pairs, a coded error's ("code", "sentence"), the HTTP_CODES table."""
    codes: set[str] = set()
    for path in BACKEND.rglob("*.py"):
        text = path.read_text(encoding="utf-8")
        codes |= set(re.findall(rf'\b\d{{3}},\s*"{CODE}"', text))
        codes |= set(re.findall(rf'\b[A-Z]\w*\(\s*"{CODE}",\s*f?"', text))  # SomeCodedError("code", "sentence")
        codes |= set(re.findall(rf'\(\s*"{CODE}",\s*"[A-Z]', text))
        codes |= set(re.findall(rf'code\s*=\s*"{CODE}"', text))
    return codes


def test_every_error_code_the_page_switches_on_can_be_sent_by_the_server() -> None:
    page, server = page_error_codes(), server_error_codes()
    assert len(page) >= 8 and len(server) >= 25, (page, server)  # the scanners found what they should
    assert {"device_revoked", "pairing_locked", "queue_full"} <= page
    made_by_page = page_made_codes()
    assert {"e2e_event_invalid", "e2e_truncated"} <= made_by_page
    assert {"e2e_required", "e2e_open_failed", "e2e_key_unknown"} <= server  # the digits in "e2e" are codes too
    assert not page - server - made_by_page, f"the page handles codes the server never sends: {sorted(page - server - made_by_page)}"


def test_the_error_code_check_can_fail() -> None:
    assert "made_up_code" not in server_error_codes()
    assert "device_revoked" in server_error_codes() and "signature_invalid" in server_error_codes()
