"""The owner's tools, together: everything `privchat <command>` runs on the owner's machine.

``cli`` holds the parser and ``main`` (serve, pair, devices, history, config, site), ``doctor``,
``service``, ``site``, ``tunnel`` (the tunnel command group), ``tunnel_setup`` (setup's plan) and
``tunnel_setup_text`` (what setup asks and prints, and its command) the rest. They
print through ``output.emit`` and fail by raising a ``PrivchatError``, which ``cli.main`` reports
once (``output.report_failure``); none of them prints an error or exits on its own.
"""
