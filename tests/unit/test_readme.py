"""The README against the code it describes, without starting anything: every setting the services read is in
its configuration table, and every `make X` it names is a target of the Makefile. (Its curl session and API
table are replayed against the running app in tests/integration/test_readme_live.py.)"""

from __future__ import annotations

import re
from pathlib import Path

from jobengine.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
MAKEFILE = (ROOT / "Makefile").read_text()


def readme_make_targets(text: str) -> set[str]:
    """`make X` in inline code, and lines `make X` of code blocks."""
    inline = re.findall(r"`make ([A-Za-z0-9][\w.-]*)[^`]*`", text)
    blocks = re.findall(r"^make ([A-Za-z0-9][\w.-]*)", "\n".join(re.findall(r"```\w*\n(.*?)```", text, re.S)), re.M)
    return set(inline) | set(blocks)


def makefile_targets(text: str) -> set[str]:
    return set(re.findall(r"^([A-Za-z0-9][\w.-]*)\s*:(?!=)", text, re.M))


def test_every_setting_is_documented_in_the_readme() -> None:
    missing = [f"JOBENGINE_{name.upper()}" for name in Settings.model_fields
               if f"`JOBENGINE_{name.upper()}`" not in README]
    assert missing == []


def test_every_make_target_the_readme_names_exists() -> None:
    named = readme_make_targets(README)
    assert {"run", "test", "bench", "chaos"} <= named  # the parser still finds what the README names
    assert named - makefile_targets(MAKEFILE) == set()


def test_the_target_parsers() -> None:
    assert readme_make_targets("run `make chaos-short` or `make bench ARGS=1`\n```bash\nmake run  # x\n```") == {
        "chaos-short", "bench", "run"}
    assert makefile_targets(".PHONY: run\nrun: venv ## x\nPY := x\nCHECKOV_VENV ?= y\n") == {"run"}


def test_the_example_schedules_file_is_valid_for_the_builtin_catalog() -> None:
    from jobengine.catalog import get_catalog
    from jobengine.schedules.declared import load

    specs = load(str(ROOT / "examples" / "schedules.yaml"))
    catalog = get_catalog()
    assert [s.name for s in specs] == ["primes-every-minute", "nightly-echo"]
    for spec in specs:
        catalog[spec.type].input_model.model_validate(spec.payload)
