"""Key prefixes are spelled once (keys.LUA_PREFIXES; the scripts write K.<name>), not in the worker's scripts."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from jobengine import keys
from jobengine.scripts import LUA_CONSTANTS, LUA_SETTINGS, source

WORKER_SCRIPTS = ("claim", "complete", "complete_claim", "recover", "schedule")
INCLUDES = ("_claim", "_complete", "_end", "_notify", "_uncount", "_dependents")


@pytest.mark.parametrize("name", WORKER_SCRIPTS + INCLUDES)
def test_the_worker_scripts_spell_no_key_prefix(name: str) -> None:
    text = resources.files("jobengine").joinpath("lua", f"{name}.lua").read_text()
    assert not re.findall(r"'(?:rq|jobengine):", text)


@pytest.mark.parametrize("name", WORKER_SCRIPTS)
def test_the_prefixes_are_written_into_the_scripts(name: str) -> None:
    text = source(name)
    assert not re.findall(r"\bK\.\w", text)
    assert "'rq:queue:'" in text  # (each of them reaches a queue)


def test_every_prefix_a_script_names_is_defined() -> None:
    lua = resources.files("jobengine").joinpath("lua")
    named = {m for f in lua.iterdir() if f.name.endswith(".lua") for m in re.findall(r"\bK\.(\w+)", f.read_text())}
    assert named and named <= set(LUA_CONSTANTS) | set(LUA_SETTINGS)  # key prefixes, a few constants, settings
    assert set(keys.LUA_PREFIXES) <= set(LUA_CONSTANTS)


def test_no_script_spells_a_key_prefix_itself() -> None:
    """Every key prefix in the Lua scripts comes from keys.LUA_PREFIXES (K.<name>), none is spelled out."""
    from importlib import resources

    for path in resources.files("jobengine").joinpath("lua").iterdir():
        text = path.read_text()
        for prefix in ("'rq:", "'jobengine:", '"rq:', '"jobengine:'):
            assert prefix not in text, f"{path.name} spells a key {prefix}...: use K.<name> (keys.LUA_PREFIXES)"
