"""The README's configuration table names every setting the services read."""

from __future__ import annotations

from pathlib import Path

from jobengine.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented_in_the_readme():
    missing = [f"JOBENGINE_{name.upper()}" for name in Settings.model_fields
               if f"`JOBENGINE_{name.upper()}`" not in README]
    assert missing == []


def test_readme_shows_the_two_commands():
    assert "make run" in README and "make test" in README
