"""The shared kit of bench/demo.py and bench/chaos.py: processes, a local site, the money check.

Modules: ``procs`` (child processes in their own groups: start, stop, kill, poll), ``site``
(``LocalSite``: sandbox, gateway and hub processes plus simulated boards on loopback),
``checker`` (every rule of INVARIANTS.md checked over the gateway's database, the sandbox's
ledger and what each board dispensed).
"""
