"""Profiles: where the CLI finds the API's URL and key.

Precedence: --url / --api-key, then the profile named by --profile, then JOBENGINE_URL / JOBENGINE_API_KEY, then
the profile named by JOBENGINE_PROFILE or the file's `default_profile` (else "default"), then
http://127.0.0.1:8000 with no key. The file is JOBENGINE_CONFIG or ~/.config/jobengine/config.toml:

    default_profile = "local"

    [profiles.local]
    url = "http://127.0.0.1:8000"
    api_key = "dev.0123..."

    [profiles.prod]
    url = "https://jobs.example.com"
    api_key_env = "PROD_JOBENGINE_KEY"   # read the key from this variable instead of the file
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import DEFAULT_URL, KEY_ENV, URL_ENV

CONFIG_ENV = "JOBENGINE_CONFIG"
PROFILE_ENV = "JOBENGINE_PROFILE"


class ProfileError(Exception):
    """A config file that cannot be read, or a profile it does not have."""


@dataclass(frozen=True)
class Profile:
    name: str | None
    url: str
    api_key: str | None


def config_path() -> Path:
    if os.environ.get(CONFIG_ENV):
        return Path(os.environ[CONFIG_ENV]).expanduser()
    base = Path(os.environ.get("XDG_CONFIG_HOME") or Path.home() / ".config")
    return base / "jobengine" / "config.toml"


def load_config(path: Path) -> dict[str, Any]:
    if not path.exists():
        if os.environ.get(CONFIG_ENV):
            raise ProfileError(f"{CONFIG_ENV}={path} does not exist")
        return {}
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ProfileError(f"cannot read {path}: {exc}") from exc


def _from_file(config: dict[str, Any], name: str, path: Path, required: bool) -> dict[str, Any]:
    profiles = config.get("profiles", {})
    if name not in profiles:
        if required:
            known = ", ".join(sorted(profiles)) or "none"
            raise ProfileError(f"no profile {name!r} in {path} (profiles: {known})")
        return {}
    entry = dict(profiles[name])
    if "api_key_env" in entry and "api_key" not in entry:
        entry["api_key"] = os.environ.get(entry["api_key_env"])
    return entry


def resolve(url: str | None, api_key: str | None, profile: str | None) -> Profile:
    path = config_path()
    config = load_config(path)
    if profile:  # named on the command line: it wins over the environment
        entry = _from_file(config, profile, path, required=True)
        return Profile(profile, url or entry.get("url") or DEFAULT_URL, api_key or entry.get("api_key"))
    env_name = os.environ.get(PROFILE_ENV)
    name = env_name or config.get("default_profile") or "default"
    entry = _from_file(config, name, path, required=bool(env_name or config.get("default_profile")))
    return Profile(name if entry else None,
                   url or os.environ.get(URL_ENV) or entry.get("url") or DEFAULT_URL,
                   api_key or os.environ.get(KEY_ENV) or entry.get("api_key"))
