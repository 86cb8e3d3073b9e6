"""Events and webhooks in the chart (issue 19): `events` and `webhooks` values become the settings of the api and
worker pods (one ConfigMap both read: the workers' scripts write the event streams, so they need the bound too),
checked by the schema."""

from __future__ import annotations

import pytest

from jobengine.settings import Settings

from .conftest import RenderError, template


def config(helm: str, *args: str) -> dict[str, str]:
    return template(helm, *args).get("ConfigMap", "rel-jobengine-config")["data"]  # type: ignore[no-any-return]


def test_the_defaults_are_the_settings_defaults_and_refuse_private_targets(helm: str) -> None:
    data = config(helm)
    wanted = {f"JOBENGINE_{name.upper()}" for name in Settings.model_fields
              if name.startswith(("events_", "webhooks_")) and name not in ("webhooks_claim_idle_seconds",
                                                                           "webhooks_secret_grace_seconds")}
    assert wanted <= set(data)
    # every value the chart sets parses as the setting it names, and equals its default
    parsed = Settings(**{k.removeprefix("JOBENGINE_").lower(): v for k, v in data.items()
                         if k.removeprefix("JOBENGINE_").lower() in Settings.model_fields
                         and k.removeprefix("JOBENGINE_").lower().startswith(("events_", "webhooks"))})
    defaults = Settings()
    for name in ("events_max_len", "events_resume_seconds", "events_heartbeat_seconds", "webhooks",
                 "webhooks_allow_private", "webhooks_timeout_seconds", "webhooks_max_attempts",
                 "webhooks_backoff_seconds"):
        assert getattr(parsed, name) == getattr(defaults, name), name
    assert data["JOBENGINE_WEBHOOKS_ALLOW_PRIVATE"] == "false"


def test_values_reach_the_config(helm: str) -> None:
    data = config(helm, "--set", "events.maxLen=50000", "--set", "events.resumeSeconds=600",
                  "--set", "webhooks.enabled=false", "--set", "webhooks.maxAttempts=3",
                  "--set-json", "webhooks.timeoutSeconds=2.5")
    assert (data["JOBENGINE_EVENTS_MAX_LEN"], data["JOBENGINE_EVENTS_RESUME_SECONDS"], data["JOBENGINE_WEBHOOKS"],
            data["JOBENGINE_WEBHOOKS_MAX_ATTEMPTS"], data["JOBENGINE_WEBHOOKS_TIMEOUT_SECONDS"]) == (
        "50000", "600", "false", "3", "2.5")


@pytest.mark.parametrize("args, message", [
    (["--set", "events.maxLen=0"], "maxLen"),
    (["--set", "events.resumeSeconds=5"], "resumeSeconds"),
    (["--set", "webhooks.maxAttempts=0"], "maxAttempts"),
    (["--set", "webhooks.allowprivate=true"], "allowprivate"),
    (["--set", "webhooks.enabled=yes"], "enabled"),
])
def test_the_schema_checks_them(helm: str, args: list[str], message: str) -> None:
    with pytest.raises(RenderError, match=message):
        template(helm, *args)
