"""The chart's `schedules` value: declared schedules kept in Git reach every api pod as the file the API
upserts at start (JOBENGINE_SCHEDULES_FILE), validated by the chart's schema, which follows the API's own spec."""

from __future__ import annotations

import json
import typing
from pathlib import Path

import pytest

from jobengine.schedules.declared import parse
from jobengine.schedules.spec import DeclaredSpec

from .conftest import CHART, RenderError, template

NIGHTLY = {"name": "nightly-report", "tenant": "acme", "type": "primes", "payload": {"lowest": 1, "highest": 99},
           "cron": "30 2 * * *", "timezone": "Europe/Berlin", "overlap": "skip", "catch_up": "latest",
           "retry": {"max_retries": 2, "base_delay": 5}}
EVERY_MINUTE = {"name": "heartbeat", "type": "echo", "payload": {"message": "hi"}, "interval_seconds": 60}


def render_with(helm: str, schedules: list[dict[str, typing.Any]]):  # type: ignore[no-untyped-def]
    return template(helm, "--set-json", f"schedules={json.dumps(schedules)}")


def api_pod(rendered) -> dict[str, typing.Any]:  # type: ignore[no-untyped-def]
    return rendered.component("api")[0]["spec"]["template"]


def test_declared_schedules_reach_the_api_as_its_schedules_file(helm: str) -> None:
    rendered = render_with(helm, [NIGHTLY, EVERY_MINUTE])
    pod = api_pod(rendered)
    container = pod["spec"]["containers"][0]
    env = {e["name"]: e.get("value") for e in container["env"]}
    path = Path(env["JOBENGINE_SCHEDULES_FILE"])
    mount = next(m for m in container["volumeMounts"] if m["mountPath"] == str(path.parent))
    volume = next(v for v in pod["spec"]["volumes"] if v["name"] == mount["name"])
    config = rendered.get("ConfigMap", volume["configMap"]["name"])
    specs = parse(config["data"][path.name], "rendered ConfigMap")  # what the API reads at start
    assert [s.model_dump(exclude_unset=True) for s in specs] == [
        DeclaredSpec.model_validate(NIGHTLY).model_dump(exclude_unset=True),
        DeclaredSpec.model_validate(EVERY_MINUTE).model_dump(exclude_unset=True)]
    assert specs[0].tenant == "acme" and specs[1].tenant == "default"


def test_no_schedules_is_an_empty_file_so_removed_ones_are_deleted(helm: str) -> None:
    rendered = template(helm)
    config = next(c for c in rendered.kind("ConfigMap") if c["metadata"]["name"].endswith("-schedules"))
    assert parse(config["data"]["schedules.json"]) == []


def test_a_change_of_schedules_rolls_the_api_pods(helm: str) -> None:
    def checksum(schedules: list[dict[str, typing.Any]]) -> str:
        return api_pod(render_with(helm, schedules))["metadata"]["annotations"]["checksum/schedules"]

    assert checksum([NIGHTLY]) == checksum([NIGHTLY])
    assert checksum([NIGHTLY]) != checksum([{**NIGHTLY, "cron": "45 2 * * *"}]) != checksum([])


@pytest.mark.parametrize(("schedule", "fragment"), [
    ({**EVERY_MINUTE, "cron": "* * * * *"}, "/schedules/0"),  # both rules
    ({"name": "x", "type": "echo"}, "/schedules/0"),  # neither
    ({**NIGHTLY, "overlap": "never"}, "/schedules/0/overlap"),
    ({**NIGHTLY, "catchup": "all"}, "additional properties 'catchup' not allowed"),
    ({**NIGHTLY, "name": "has space"}, "/schedules/0/name"),
    ({**EVERY_MINUTE, "interval_seconds": 0}, "/schedules/0/interval_seconds"),
], ids=["cron-and-interval", "no-rule", "overlap", "unknown-key", "name", "interval"])
def test_the_schema_refuses_a_bad_schedule_naming_it(helm: str, schedule: dict[str, typing.Any],
                                                     fragment: str) -> None:
    with pytest.raises(RenderError) as info:
        render_with(helm, [schedule])
    assert "values don't meet the specifications of the schema" in str(info.value)
    assert fragment in str(info.value), str(info.value)


def test_the_schema_follows_the_apis_spec() -> None:
    """Every field the API accepts in the file, and no other; the same choices for the enumerations."""
    item = json.loads((CHART / "values.schema.json").read_text())["definitions"]["schedule"]
    assert set(item["properties"]) == set(DeclaredSpec.model_fields)
    for name, field in DeclaredSpec.model_fields.items():
        choices = typing.get_args(field.annotation) if typing.get_origin(field.annotation) is typing.Literal else ()
        if choices:
            assert item["properties"][name]["enum"] == list(choices), name
    assert set(item["required"]) == {n for n, f in DeclaredSpec.model_fields.items() if f.is_required()}
