"""End-to-end payload encryption between the page and the backend (HPKE, RFC 9180).

TLS ends at Cloudflare's edge, so the edge would otherwise handle every prompt and reply in plain
text. Every signed request is sealed to the server's E2E key and every answer is sealed under a key
exported from the request's HPKE context, so the edge sees sizes, timing, paths and the Access
identity, never content. The wire format is ``docs/E2E.md``; one module per step:

- ``suite``: the cipher suite, the labels and the ``info`` string, in one place;
- ``keys``: the server key pair, stored sealed, its rotation and grace period;
- ``header``: parsing the ``Privchat-E2E`` request header;
- ``sealing``: opening a request body and sealing its answer, chunk by chunk;
- ``errors``: one refusal per failure.
"""
