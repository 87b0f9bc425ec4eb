"""The edge hub: the asyncio daemon at a vending site (docs/hub.md).

Layers, each a module with one job:

- ``config``: the declarative settings table -> frozen ``HubConfig`` (``load_config``).
- ``store``: SQLite (schema, migrations, integrity check), vend sessions + audit, the outbox.
- ``vend``: the vend session state machine's one transition table.
- ``ports``: serial ports (pyserial-asyncio-fast) driving ``protocol.Link``.
- ``hub``, ``commands``, ``deadlines``: the purchase, pushed commands, monotonic deadlines.
- ``uplink``: the gateway client, the outbox sender, the push channel.
- ``daemon``: wiring, supervision, systemd notify/watchdog, the status page (``view``).
- ``cli``: ``edge-hub run | hash-password | sim-board``.

``status`` (the technicians' page) and ``simboard`` (the board simulator) are separate packages.
"""
