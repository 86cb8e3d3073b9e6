"""Key prefixes are spelled once (keys.PREFIXES, handed to the scripts as K), not in the worker's scripts."""

from __future__ import annotations

import re
from importlib import resources

import pytest

from jobengine import keys
from jobengine.scripts import source

WORKER_SCRIPTS = ("claim", "complete", "complete_claim", "recover", "schedule")


@pytest.mark.parametrize("name", WORKER_SCRIPTS)
def test_the_worker_scripts_spell_no_key_prefix(name: str) -> None:
    lua = resources.files("jobengine").joinpath("lua")
    texts = [lua.joinpath(f"{name}.lua").read_text()] + [
        lua.joinpath(f"{part}.lua").read_text() for part in ("_claim", "_complete", "_end", "_uncount")]
    for text in texts:
        assert not re.findall(r"'(?:rq|jobengine):", text)


def test_the_prefixes_reach_the_scripts_as_k() -> None:
    text = source("claim")
    for name, prefix in keys.PREFIXES.items():
        assert f"{name} = '{prefix}'" in text
