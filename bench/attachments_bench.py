"""Attachments: the time from attaching a 20-page PDF to the reply's first token.

One live privchat server with the embedded model; each round makes a new conversation: ``POST
/api/attachments`` with the PDF (sealed, base64; pypdf reads its text; stored sealed), then ``POST
/api/chat`` naming it, until the first token. Reported: the median of the rounds, split into the
upload (check, extract, store) and the rest (documents fitted to the context, the prompt processed,
the first token), and how many of the 20 pages fitted. Each round's PDF starts differently, so the
prompt is processed cold (no prefix kept from the round before). Run alone with
``.venv/bin/python bench/attachments_bench.py`` or as part of ``scripts/bench``.
"""

from __future__ import annotations

import base64
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.documents import make_pdf  # noqa: E402
from tests.support.server import LiveServer, parse_sse, write_config  # noqa: E402

PAGES = 20


def twenty_pages(number: int = 0) -> bytes:
    """A different report each round (its first words differ), so no round reuses the last one's prompt."""
    return make_pdf([f"Page {n} of harbour report {number}.\n" + "\n".join(
        f"Line {i}: the tide came in at {n}:{i:02d} and the boats went out again." for i in range(8)) for n in range(1, PAGES + 1)])


def run(folder: Path, model: Path | None, threads: int, rounds: int = 5, n_ctx: int = 2048) -> dict[str, Any]:
    overrides: dict[str, Any] = {"model": {"n_threads": threads, "n_ctx": n_ctx}, "titles": {"enabled": False}}
    if model is not None:
        overrides["model"]["path"] = str(model)
    server = LiveServer(folder, write_config(folder, overrides)).start()
    try:
        client = server.pair()
        uploads, firsts, totals, seen = [], [], [], None
        for round_ in range(rounds + 1):  # the first round warms the model up
            pdf = twenty_pages(round_)
            data = base64.b64encode(pdf).decode("ascii")
            started = time.perf_counter()
            answer = client.post("/api/attachments", {"name": "report.pdf", "mime": "application/pdf", "data": data})
            assert answer.status_code == 201, answer.text
            uploaded = time.perf_counter()
            response = client.request("POST", "/api/chat", stream=True, json_body={
                "message": "What time did the tide come in on page 3?", "attachments": [answer.json()["id"]],
                "options": {"max_tokens": 8, "temperature": 0}})
            first = None
            try:
                for kind, event in parse_sse(response.iter_text()):
                    if kind == "token" and first is None:
                        first = time.perf_counter()
                    elif kind == "done":
                        seen = event.get("attachments_seen")
                        break
                    elif kind == "error":
                        raise AssertionError(event)
            finally:
                response.close()
            assert first is not None, "no token"
            if round_:
                uploads.append((uploaded - started) * 1000)
                firsts.append((first - uploaded) * 1000)
                totals.append((first - started) * 1000)
        page = (seen or [{}])[0]
        return {"pdf_bytes": len(pdf), "pages": PAGES, "pages_seen": page.get("pages_seen"), "n_ctx": n_ctx, "rounds": rounds,
                "attach_to_first_token_ms": round(statistics.median(totals), 1),
                "upload_ms": round(statistics.median(uploads), 1),
                "chat_to_first_token_ms": round(statistics.median(firsts), 1),
                "rounds_ms": [round(t, 1) for t in totals]}
    finally:
        server.stop()


if __name__ == "__main__":
    import json
    import os

    print(json.dumps(run(Path(tempfile.mkdtemp(prefix="privchat-attach-bench-")), None, os.cpu_count() or 2), indent=2))
