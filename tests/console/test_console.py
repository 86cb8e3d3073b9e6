"""The web console in headless Chromium against the real API and worker processes (issue 19): an operator
signs in, finds a failed job, retries it and watches it finish without a reload, pauses and resumes a queue,
pauses and triggers a schedule; a read-only key sees no action and its forged POSTs get 403; an action
without its CSRF token is refused; axe-core finds no serious or critical violation on any page; /docs and
/redoc render with nothing fetched off loopback. Screenshots of each page go to .run/screenshots (docs/img/console-*.png with JOBENGINE_UPDATE_SCREENSHOTS=1)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import TEST_KEY
from tests.support.wait import wait_until

from .conftest import OTHER_KEY, READ_KEY, SCREENSHOTS, axe_violations

pytestmark = pytest.mark.timeout(120)

JOB_ID = re.compile(r"[0-9a-f]{32}")


def sign_in(b: Any, key: str) -> None:
    b.page.goto("/console/login")
    b.page.get_by_label("API key").fill(key)
    b.page.get_by_role("button", name="Sign in").click()
    b.page.wait_for_url("**/console")


def check_page(b: Any, axe: Path, name: str | None) -> None:
    """No serious or critical accessibility violation; a screenshot for the docs when `name` is given."""
    b.page.wait_for_load_state("load")
    violations = axe_violations(b.page, axe)
    assert violations == [], (b.page.url, violations)
    if name:
        b.page.screenshot(path=str(SCREENSHOTS / f"console-{name}.png"), full_page=True)


def failed_job(api: Any) -> str:
    """An echo job that fails its first attempt (no automatic retry) and succeeds when retried."""
    resp = api.client.post("/v1/jobs", json={"type": "echo", "payload": {"message": "hello", "fail_attempts": 1},
                                             "retry": {"max_retries": 0}})
    assert resp.status_code == 202, resp.text
    job_id = resp.json()["id"]
    wait_until(lambda: api.client.get(f"/v1/jobs/{job_id}").json()["status"] == "failed", timeout=20,
               message="the job to fail")
    return job_id


def test_operator_retries_a_failed_job_and_watches_it_finish_live(  # type: ignore[no-untyped-def]
        console_api, worker, open_browser, axe_script) -> None:
    api = console_api
    job_id = failed_job(api)
    for n in range(3):  # some finished jobs for the lists
        api.client.post("/v1/jobs", json={"type": "primes", "payload": {"lowest": 10, "highest": 17 + n}})
    assert api.client.post("/v1/schedules", json={"name": "nightly-primes", "type": "primes", "cron": "30 2 * * *",
                                                  "timezone": "Europe/Berlin",
                                                  "payload": {"lowest": 10, "highest": 17}}).status_code == 201
    b = open_browser(api.base_url)

    b.page.goto("/console/jobs")  # not signed in: to the sign-in page
    b.page.wait_for_url("**/console/login")
    check_page(b, axe_script, "login")
    sign_in(b, TEST_KEY)
    wait_until(lambda: "jobs/s" in b.page.locator('[data-field="throughput"]').first.inner_text(), timeout=10,
               message="the overview to measure throughput (two polls)")
    check_page(b, axe_script, "overview")

    # pause the job's queue from the overview, so the retried job waits where the page can watch it
    row = b.page.locator('tr[data-queue="default"]')
    row.get_by_role("button", name="Pause queue default").click()
    b.page.wait_for_url("**/console?done=paused")
    assert row.locator('[data-field="paused"]').inner_text() == "paused"
    queues = {q["name"]: q for q in api.client.get("/v1/queues").json()["items"]}
    assert queues["default"]["paused"] is True

    # triage: the failed job is listed with its error; retry it from its row
    b.page.get_by_role("link", name="Failed", exact=True).click()
    failed_row = b.page.locator(f'tr[data-job="{job_id}"]')
    assert "fail" in failed_row.locator("td.err").inner_text().lower()
    check_page(b, axe_script, "failed")
    failed_row.get_by_role("button", name=f"Retry job {job_id}").click()
    b.page.wait_for_url(f"**/console/jobs/{job_id}?done=retried")
    status = b.page.locator('[data-field="status"]')
    assert status.inner_text() == "queued"
    b.page.evaluate("() => { window.__notReloaded = true; }")

    # resume the queue through the API (another operator): the page follows the job to its end by itself
    assert api.client.post("/v1/queues/default:resume").status_code == 200
    b.page.wait_for_function("() => document.querySelector('[data-field=status]').textContent === 'finished'",
                             timeout=20_000)
    assert b.page.evaluate("() => window.__notReloaded === true")  # the same document: updated, not reloaded
    # ...through the job's event stream (GET /v1/jobs/{id}/events with the session cookie), not only by polling
    live = b.page.evaluate("() => [document.querySelector('main').dataset.liveSource, "
                           "Number(document.querySelector('main').dataset.eventsSeen || 0)]")
    assert live[0] == "ended" and live[1] >= 2, live  # its start and its end at least; then the stream closed
    assert '"attempt": 2' in b.page.locator('[data-field="result"]').inner_text()
    assert b.page.locator(f'form[action="/console/jobs/{job_id}/retry"]').is_hidden()
    check_page(b, axe_script, "job")

    # jobs: filters, search by id
    b.page.get_by_role("link", name="Jobs", exact=True).click()
    b.page.get_by_label("Status").select_option("finished")
    b.page.get_by_role("button", name="Filter").click()
    b.page.wait_for_url("**/console/jobs?status=finished*")
    assert b.page.locator("#jobs tbody tr").count() == 4
    check_page(b, axe_script, "jobs")
    b.page.get_by_label("Job id").fill(job_id)
    b.page.get_by_label("Job id").press("Enter")
    b.page.wait_for_url(f"**/console/jobs/{job_id}")

    b.page.get_by_role("link", name="Workers", exact=True).click()
    assert b.page.locator("#workers tbody tr").count() == 1
    check_page(b, axe_script, "workers")

    b.page.get_by_role("link", name="Schedules", exact=True).click()
    b.page.get_by_role("button", name="Pause schedule nightly-primes").click()
    b.page.wait_for_url("**/console/schedules?done=schedule-paused")
    assert api.client.get("/v1/schedules/nightly-primes").json()["state"] == "paused"
    b.page.get_by_role("button", name="Trigger schedule nightly-primes").click()
    b.page.wait_for_url("**/console/schedules?done=triggered")
    check_page(b, axe_script, "schedules")

    # bulk retry: a bulk operation over the tenant's failed jobs
    second = failed_job(api)
    b.page.goto("/console/failed")
    b.page.get_by_role("button", name=re.compile("Retry all failed jobs")).click()
    b.page.wait_for_url("**/console/failed?done=bulk*")
    wait_until(lambda: api.client.get(f"/v1/jobs/{second}").json()["status"] == "finished", timeout=20,
               message="the bulk-retried job to finish")
    assert b.external == [] and b.console_errors == [], (b.external, b.console_errors)


def test_keyboard_alone_signs_in_and_reaches_the_jobs(  # type: ignore[no-untyped-def]
        console_api, open_browser) -> None:
    b = open_browser(console_api.base_url)
    b.page.goto("/console/login")
    assert b.page.evaluate("() => document.activeElement.id") == "api_key"  # the key field has the focus
    b.page.keyboard.type(TEST_KEY)
    b.page.keyboard.press("Enter")
    b.page.wait_for_url("**/console")
    b.page.keyboard.press("Tab")  # the skip link comes first
    assert b.page.evaluate("() => document.activeElement.textContent") == "Skip to content"
    b.page.keyboard.press("Enter")  # and moves the focus to the content
    assert b.page.evaluate("() => document.activeElement.id") == "main"
    for _ in range(40):  # back through the page to the navigation's Jobs link
        b.page.keyboard.press("Shift+Tab")
        if b.page.evaluate("() => document.activeElement.textContent") == "Jobs":
            break
    b.page.keyboard.press("Enter")
    b.page.wait_for_url("**/console/jobs")


def test_read_only_key_sees_no_actions_and_its_forged_posts_get_403(  # type: ignore[no-untyped-def]
        console_api, worker, open_browser, axe_script) -> None:
    api = console_api
    job_id = failed_job(api)
    b = open_browser(api.base_url)
    sign_in(b, READ_KEY)
    assert "Queue and worker statistics" in b.page.locator("main").inner_text()
    assert b.page.locator("main button").count() == 0
    b.page.goto("/console/failed")
    assert b.page.locator(f'tr[data-job="{job_id}"]').count() == 1  # it reads its tenant's jobs
    assert b.page.locator("main button").count() == 1  # the filter's only: no retry, no bulk retry
    b.page.goto(f"/console/jobs/{job_id}")
    assert b.page.locator("main form[method=post]").count() == 0
    check_page(b, axe_script, None)
    assert b.page.goto("/console/workers").status == 403
    csrf = b.page.locator('header input[name="csrf"]').get_attribute("value")  # its own valid token
    for path in (f"/console/jobs/{job_id}/retry", "/console/queues/default/pause", "/console/failed/retry",
                 "/console/schedules/any/trigger"):
        resp = b.page.request.post(path, form={"csrf": csrf}, max_redirects=0)
        assert resp.status == 403, (path, resp.status)
    assert api.client.get(f"/v1/jobs/{job_id}").json()["status"] == "failed"
    assert not any(q["paused"] for q in api.client.get("/v1/queues").json()["items"])
    # the session cookie reads the JSON API (GET) only: a POST to /v1 with it is unauthenticated
    assert b.page.request.get(f"/v1/jobs/{job_id}").status == 200
    assert b.page.request.post(f"/v1/jobs/{job_id}/retry").status == 401

    # another tenant's key sees none of it, in the pages as in the JSON API they poll
    other = open_browser(api.base_url)
    sign_in(other, OTHER_KEY)
    assert other.page.goto(f"/console/jobs/{job_id}").status == 404
    other.page.goto("/console/failed")
    assert other.page.locator("#failed tbody tr.empty").count() == 1
    assert other.page.request.get(f"/v1/jobs/{job_id}").status == 404


def test_an_action_without_its_csrf_token_is_refused(console_api, open_browser) -> None:  # type: ignore[no-untyped-def]
    api = console_api
    b = open_browser(api.base_url)
    sign_in(b, TEST_KEY)
    csrf = b.page.locator('header input[name="csrf"]').get_attribute("value")
    for form in ({}, {"csrf": "forged"}, {"csrf": csrf[:-2] + "xx"}):
        resp = b.page.request.post("/console/queues/default/pause", form=form, max_redirects=0)
        assert resp.status == 403 and "CSRF" in resp.text(), form
    foreign = b.page.request.post("/console/queues/default/pause", form={"csrf": csrf}, max_redirects=0,
                                  headers={"Origin": "https://evil.example"})
    assert foreign.status == 403
    assert not any(q["paused"] for q in api.client.get("/v1/queues").json()["items"])
    ok = b.page.request.post("/console/queues/default/pause", form={"csrf": csrf}, max_redirects=0)
    assert ok.status == 303  # the same request with its token does it
    assert {q["name"]: q for q in api.client.get("/v1/queues").json()["items"]}["default"]["paused"] is True
    # a session of another browser (no cookie) is sent to sign in, whatever it posts
    anonymous = httpx.post(f"{api.base_url}/console/queues/default/resume", data={"csrf": csrf})
    assert anonymous.status_code == 303 and anonymous.headers["location"] == "/console/login"


def test_sessions_cookies_and_security_headers(console_api) -> None:  # type: ignore[no-untyped-def]
    api = console_api
    with httpx.Client(base_url=api.base_url) as c:
        login = c.get("/console/login")
        assert login.status_code == 200
        for name, value in {"x-frame-options": "DENY", "x-content-type-options": "nosniff",
                            "referrer-policy": "same-origin"}.items():
            assert login.headers[name] == value
        csp = login.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "frame-ancestors 'none'" in csp and "script-src 'self'" in csp
        token = re.search(r'name="csrf" value="([^"]+)"', login.text).group(1)  # type: ignore[union-attr]
        wrong = c.post("/console/login", data={"csrf": token, "api_key": TEST_KEY + "x"})
        assert wrong.status_code == 401 and "jobengine_console=" not in wrong.headers.get("set-cookie", "")
        token = re.search(r'name="csrf" value="([^"]+)"', wrong.text).group(1)  # type: ignore[union-attr]
        signed = c.post("/console/login", data={"csrf": token, "api_key": TEST_KEY})
        assert signed.status_code == 303
        cookie = next(v for k, v in signed.headers.multi_items() if k == "set-cookie" and "jobengine_console=" in v)
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
        assert "Secure" not in cookie  # http://127.0.0.1 only; any other host gets Secure (tests/unit)
        assert TEST_KEY.split(".")[1] not in cookie  # the key's secret is never in the cookie
        assert c.get("/console").status_code == 200
        # another site's page cannot frame or script the console; no /v1 write with the cookie
        assert c.delete(f"/v1/jobs/{'0' * 32}").status_code == 401
        # /v1 and /docs are untouched by the console's headers
        assert "content-security-policy" not in c.get("/healthz").headers
    with httpx.Client(base_url=api.base_url) as c:  # login form posted without its cookie (another site)
        page = httpx.get(f"{api.base_url}/console/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        assert c.post("/console/login", data={"csrf": token, "api_key": TEST_KEY}).status_code == 403


@pytest.mark.parametrize("path, ready", [("/docs", ".swagger-ui .info .title"), ("/redoc", "redoc-wrap, .redoc-wrap")])
def test_docs_render_with_no_request_off_loopback(  # type: ignore[no-untyped-def]
        console_api, open_browser, path: str, ready: str) -> None:
    b = open_browser(console_api.base_url)
    b.page.goto(path)
    b.page.wait_for_selector(ready, timeout=20_000)
    assert "jobengine" in b.page.locator("body").inner_text()
    assert b.external == [], b.external  # every asset came from the API itself
    if path == "/docs":
        assert b.page.locator(".opblock").count() > 10  # the operations are listed


def test_console_pages_say_so_while_redis_is_away_and_serve_again_after(  # type: ignore[no-untyped-def]
        console_api, redis_server) -> None:
    api = console_api
    with httpx.Client(base_url=api.base_url) as c:
        page = c.get("/console/login").text
        token = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # type: ignore[union-attr]
        assert c.post("/console/login", data={"csrf": token, "api_key": TEST_KEY}).status_code == 303
        assert c.get("/console/jobs").status_code == 200
        redis_server.stop()
        try:
            away = c.get("/console/jobs")
            assert away.status_code == 503 and away.headers["retry-after"] == "1"
            assert "Redis is not reachable" in away.text and away.headers["content-type"].startswith("text/html")
        finally:
            redis_server.start()
        wait_until(lambda: c.get("/console/jobs").status_code == 200, timeout=20, message="the console back")
