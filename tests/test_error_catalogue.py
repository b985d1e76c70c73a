"""The error catalogue (``privchat/errors.py``) holds together, and every raise site uses it as it says.

Read statically, so a refusal on a path no other test takes cannot turn into a 500 on the day it is
first met: a raise site must give every ``{field}`` its entry's sentence needs (and no other), may
give a sentence of its own only for an entry marked ``specific``, and every entry is raised
somewhere. Each check has its negative control on a made-up source.
"""

from __future__ import annotations

import ast
import importlib
import pkgutil
import string
from pathlib import Path

from privchat import errors
from privchat.errors import CATALOGUE, NOT_FOUND, QUEUE_FULL, Code, CodedError, NotFound

BACKEND = Path(errors.__file__).resolve().parent
ENTRIES: dict[str, Code] = {name: value for name, value in vars(errors).items() if isinstance(value, Code)}
NOT_FIELDS = {"retry_after"}  # CodedError's own keyword, not a field of a sentence


def fields(entry: Code) -> set[str]:
    return {name for _text, name, _spec, _conversion in string.Formatter().parse(entry.sentence) if name}


def raise_site_problems(source: str, where: str, entries: dict[str, Code] = ENTRIES) -> list[str]:
    """Each call whose first argument names a catalogue entry, checked against that entry."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Name)
                and node.args[0].id in entries):
            continue
        name, entry = node.args[0].id, entries[node.args[0].id]
        at = f"{where}:{node.lineno} {name}"
        own_sentence = len(node.args) > 1 and not (isinstance(node.args[1], ast.Constant) and node.args[1].value is None)
        if own_sentence:
            if not entry.specific:
                problems.append(f"{at}: a sentence of its own for an entry that is not specific")
            continue
        if any(keyword.arg is None for keyword in node.keywords):
            continue  # **fields: not for a static check
        given = {keyword.arg for keyword in node.keywords} - NOT_FIELDS
        if fields(entry) - given:
            problems.append(f"{at}: no {', '.join(sorted(fields(entry) - given))} for its sentence")
        if given - fields(entry):
            problems.append(f"{at}: {', '.join(sorted(given - fields(entry)))} is not a field of its sentence")
    return problems


def entry_first_classes() -> set[str]:
    """CodedError and its leaves that keep its constructor: their first argument is a catalogue entry."""
    for module in pkgutil.walk_packages([str(BACKEND)], "privchat."):
        if not module.name.endswith("__main__"):  # that one runs the CLI
            importlib.import_module(module.name)
    found, todo = set(), [CodedError]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__init__ is CodedError.__init__:
            found.add(cls.__name__)
    return found


def entry_argument_problems(source: str, where: str, classes: set[str]) -> list[str]:
    """A call of such a class whose first argument is a code's name (a string, ``other.code``), not its entry."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in classes and node.args:
            first = node.args[0]
            if (isinstance(first, (ast.Constant, ast.JoinedStr))
                    or (isinstance(first, ast.Attribute) and first.attr == "code")):
                problems.append(f"{where}:{node.lineno} {node.func.id}: the first argument must be a catalogue entry")
    return problems


def backend_sources() -> dict[str, str]:
    return {str(path.relative_to(BACKEND)): path.read_text(encoding="utf-8") for path in BACKEND.rglob("*.py")}


def test_each_code_is_in_the_catalogue_once_with_a_status_and_a_sentence() -> None:
    codes = [entry.code for entry in CATALOGUE]
    assert len(codes) == len(set(codes)) >= 80, sorted(c for c in codes if codes.count(c) > 1)
    assert set(ENTRIES.values()) == set(CATALOGUE)
    for name, entry in ENTRIES.items():
        assert name == entry.code.upper(), name  # the constant is named after its code
        assert 400 <= entry.status <= 599, entry
        assert entry.sentence.endswith((".", "}")), entry  # a sentence, or one that a field ends


def test_every_raise_site_fills_its_entry_as_the_entry_allows() -> None:
    problems = [p for where, source in backend_sources().items() for p in raise_site_problems(source, where)]
    assert not problems, problems


def test_every_coded_error_is_made_from_an_entry() -> None:
    classes = entry_first_classes()
    assert {"CodedError", "SignatureError", "UpstreamFailed", "E2EError"} <= classes and "NotFound" not in classes
    problems = [p for where, source in backend_sources().items() for p in entry_argument_problems(source, where, classes)]
    assert not problems, problems
    assert entry_argument_problems("raise UpstreamFailed(exc.code, exc.message)\nraise SpeechError('audio_silent')\n"
                                   "raise SpeechError(AUDIO_SILENT)\n", "made_up.py", classes) == [
        "made_up.py:1 UpstreamFailed: the first argument must be a catalogue entry",
        "made_up.py:2 SpeechError: the first argument must be a catalogue entry"]


def test_every_entry_is_raised_somewhere() -> None:
    sources = backend_sources()
    used = {node.id for where, source in sources.items() if where != "errors.py"
            for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Name)}
    used |= {"NOT_FOUND"}  # NotFound, in errors.py itself, says it for every kind of id
    assert not set(ENTRIES) - used, sorted(set(ENTRIES) - used)


def test_the_raise_site_check_can_fail() -> None:
    source = ("raise CodedError(QUEUE_FULL)\n"
              "raise CodedError(QUEUE_FULL, waiting=3, wating=3)\n"
              "raise CodedError(REPLAYED, 'Again.')\n"
              "raise CodedError(HOST_NOT_ALLOWED, 'Somewhere else.')\n"
              "raise CodedError(RATE_LIMITED, retry_after=5)\n")
    assert raise_site_problems(source, "made_up.py") == [
        "made_up.py:1 QUEUE_FULL: no waiting for its sentence",
        "made_up.py:2 QUEUE_FULL: wating is not a field of its sentence",
        "made_up.py:3 REPLAYED: a sentence of its own for an entry that is not specific"]


def test_a_coded_error_carries_its_entry_and_reads_as_the_api_and_the_stream_say_it() -> None:
    busy = CodedError(QUEUE_FULL, waiting=3)
    assert (busy.code, busy.status, busy.retry_after) == ("queue_full", 503, 5)
    assert busy.as_json() == {"code": "queue_full", "message": "The model is busy with 3 requests; try again shortly."}
    assert CodedError(QUEUE_FULL, retry_after=9, waiting=1).retry_after == 9
    gone = NotFound("conversation")
    assert isinstance(gone, LookupError) and gone.entry is NOT_FOUND and gone.status == 404
    assert gone.message == "There is no conversation with that id (it may have been deleted)."
