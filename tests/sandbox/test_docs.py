"""Every setting and fault knob has help text and a mention in the sandbox README."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from aiohttp import web

import cloud_gateway.sandbox as sandbox_pkg
from cloud_gateway.sandbox import FAULTS_HELP, SETTINGS_HELP, Faults, SandboxConfig

README = Path(sandbox_pkg.__file__).with_name("README.md").read_text()


def test_every_setting_documented() -> None:
    names = {f.name for f in dataclasses.fields(SandboxConfig)}
    assert set(SETTINGS_HELP) == names
    assert [n for n in sorted(names) if n not in README] == []


def test_every_fault_knob_documented() -> None:
    names = {f.name for f in dataclasses.fields(Faults)} - {"rng"}
    assert set(FAULTS_HELP) == names
    missing = [
        n for n in sorted(names)
        if n not in README and n.rsplit("_", 1)[0] + "_next/rate" not in README
    ]
    assert missing == []


def test_every_sim_route_documented() -> None:
    from cloud_gateway.sandbox import sim

    paths = {r.path for r in sim.routes if isinstance(r, web.RouteDef)}
    assert paths
    assert [p for p in sorted(paths) if p not in README] == []
