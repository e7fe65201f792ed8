"""The dashboard as a person uses it: Debian's Chromium, driven by Playwright, against a real
uvicorn server over a SQLite store with a running host. One browser serves the whole module; each
test gets a fresh browser context (no cookies carried over)."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest

sync_api = pytest.importorskip("playwright.sync_api")
from polling import wait_until

from liteflow.core import WorkflowStatus

from .conftest import HOSTILE_ATTRIBUTE, HOSTILE_SCRIPT, TOKEN, Screenshots, Server, Stack

expect = sync_api.expect
CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.path.exists(CHROMIUM):
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(f"{CHROMIUM} is missing (CI=true: .ci/run installs Debian's chromium)", pytrace=False)
        pytest.skip(f"{CHROMIUM} is missing: apt-get install -y chromium")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


class Visit:
    """A page in a fresh context that records every dialog a page opens (there must be none)."""

    def __init__(self, browser: Any) -> None:
        self.context = browser.new_context(viewport={"width": 1280, "height": 860})
        self.context.set_default_timeout(15_000)
        self.page = self.context.new_page()
        self.dialogs: list[str] = []

        def on_dialog(dialog: Any) -> None:
            self.dialogs.append(dialog.message)
            dialog.dismiss()

        self.page.on("dialog", on_dialog)

    def sign_in(self, server: Server, token: str = TOKEN, then: str = "/") -> None:
        self.page.goto(f"{server.url}/login?next={then}")
        self.page.fill("#token", token)
        self.page.click("#login-submit")
        expect(self.page.get_by_role("button", name="Sign out")).to_be_visible()

    def csrf(self) -> str:
        value: str = self.page.locator("input[name=csrf]").first.get_attribute("value")
        return value


@pytest.fixture
def visit(browser: Any) -> Iterator[Visit]:
    opened = Visit(browser)
    yield opened
    opened.context.close()


def test_overview_counts_and_chart(visit: Visit, server: Server, stack: Stack, screenshots: Screenshots) -> None:
    page = visit.page
    page.goto(server.url + "/")
    expect(page.locator("#counts [data-status=complete] .number")).to_have_text(re.compile(r"^1[2-9]$|^\d\d+$"))
    expect(page.locator("#counts [data-status=suspended] .number")).to_have_text("1")
    # The chart's started line climbs off the baseline: the workflows above started this hour.
    points = page.locator("#activity polyline.started").get_attribute("points") or ""
    heights = {float(p.split(",")[1]) for p in points.split()}
    assert len(heights) > 1
    screenshots.take(page, "overview")


def test_list_filter_and_open_an_instance(visit: Visit, server: Server, stack: Stack, screenshots: Screenshots) -> None:
    page = visit.page
    page.goto(server.url + "/")
    page.click("header >> text=Instances")
    rows = page.locator("#instances tbody tr")
    expect(page.locator(f"tr[data-id='{stack.waiting}']")).to_be_visible()
    expect(page.locator("#range")).to_contain_text("newest first")
    screenshots.take(page, "instances")

    page.select_option("#filter-status", "suspended")
    page.click("text=Filter")
    expect(page).to_have_url(re.compile(r"status=suspended"))
    expect(rows).to_have_count(1)
    expect(page.locator(f"tr[data-id='{stack.failed}']")).to_be_visible()

    page.select_option("#filter-status", "")
    page.fill("#filter-workflow", "order")
    page.fill("#filter-reference", "order-A-1")
    page.click("text=Filter")
    expect(rows).to_have_count(1)
    page.click(f"tr[data-id='{stack.waiting}'] a")

    expect(page.locator("#instance-id")).to_have_text(stack.waiting)
    # The graph highlights the step the workflow waits on (step 1, wait_for), and only that one.
    active = page.locator("#graph g.node.active")
    expect(active).to_have_count(1)
    expect(active).to_have_attribute("data-step", "1")
    expect(active).to_contain_text("wait_for approved")
    expect(page.locator("#graph g.node")).to_have_count(3)
    expect(page.locator("#timeline tbody tr")).to_have_count(2)  # Prepare done, the wait open
    expect(page.locator("#waits")).to_contain_text("approved")
    expect(page.locator("#waits")).to_contain_text("A-1")
    expect(page.locator("#data")).to_contain_text('"customer": "Ada"')
    screenshots.take(page, "instance")


def test_a_bad_filter_is_named(visit: Visit, server: Server) -> None:
    page = visit.page
    response = page.goto(server.url + "/instances?since=yesterday")
    assert response is not None and response.status == 400
    expect(page.locator("#problem")).to_contain_text("since must be a duration")


def test_errors_show_their_traceback(visit: Visit, server: Server, stack: Stack) -> None:
    page = visit.page
    page.goto(f"{server.url}/instances/{stack.failed}")
    error = page.locator("details.error").first
    expect(error).to_contain_text("RuntimeError")
    expect(error).to_contain_text("cannot handle <b>bold</b>")  # shown as text, not as markup
    expect(error.locator("pre")).to_contain_text("Traceback")
    expect(page.locator("details.error b", has_text="bold")).to_have_count(0)


def test_suspend_and_resume_with_the_token(
    visit: Visit, server: Server, stack: Stack, screenshots: Screenshots
) -> None:
    page = visit.page
    visit.sign_in(server, then=f"/instances/{stack.waiting}")
    expect(page.locator("#instance-id")).to_have_text(stack.waiting)

    page.click("#suspend")
    expect(page.locator("#notice")).to_have_text("Done: suspend.")
    expect(page.locator("#status")).to_have_text("suspended")
    assert stack.status(stack.waiting) is WorkflowStatus.SUSPENDED
    screenshots.take(page, "suspended")

    page.click("#resume")
    expect(page.locator("#notice")).to_have_text("Done: resume.")
    expect(page.locator("#status")).to_have_text("runnable")
    assert stack.status(stack.waiting) is WorkflowStatus.RUNNABLE


def test_actions_refused_without_the_token(visit: Visit, server: Server, readonly_server: Server, stack: Stack) -> None:
    page = visit.page
    # Not signed in: the buttons are disabled, and a POST anyway (with this session's own CSRF
    # token) is refused.
    page.goto(f"{server.url}/instances/{stack.waiting}")
    expect(page.locator("#suspend")).to_be_disabled()
    refused = page.request.post(f"{server.url}/instances/{stack.waiting}/suspend", form={"csrf": visit.csrf()})
    assert refused.status == 403
    assert "sign in" in refused.text()

    # A wrong token does not sign in.
    page.goto(f"{server.url}/login")
    page.fill("#token", "not-the-token")
    page.click("#login-submit")
    expect(page.locator("#login-failed")).to_be_visible()

    # Without a configured token the dashboard is read-only for everyone.
    page.goto(f"{readonly_server.url}/instances/{stack.waiting}")
    expect(page.locator("#mode")).to_have_text("read-only")
    expect(page.locator("#suspend")).to_be_disabled()
    refused = page.request.post(
        f"{readonly_server.url}/instances/{stack.waiting}/terminate", form={"csrf": visit.csrf()}
    )
    assert refused.status == 403
    assert "read-only" in refused.text()
    assert stack.status(stack.waiting) is WorkflowStatus.RUNNABLE


def test_a_post_without_the_form_token_is_refused(visit: Visit, server: Server, stack: Stack) -> None:
    page = visit.page
    visit.sign_in(server, then=f"/instances/{stack.waiting}")
    url = f"{server.url}/instances/{stack.waiting}/suspend"
    for form in ({}, {"csrf": "forged"}):
        refused = page.request.post(url, form=form)
        assert refused.status == 403
        assert "CSRF" in refused.text()
    assert stack.status(stack.waiting) is WorkflowStatus.RUNNABLE


def test_stored_html_and_script_are_shown_as_text(visit: Visit, server: Server, stack: Stack) -> None:
    page = visit.page
    for path in (f"/instances/{stack.hostile}", "/instances?workflow=order", "/events", "/events?name=hostile&key=X-9"):
        page.goto(server.url + path)
        expect(page.locator("main")).to_be_visible()
        assert page.evaluate("window.__xss") is None
        expect(page.locator("#injected")).to_have_count(0)
        expect(page.locator("img")).to_have_count(0)
    page.goto(f"{server.url}/instances/{stack.hostile}")
    expect(page.locator("#data")).to_contain_text(HOSTILE_SCRIPT)
    expect(page.locator("#data")).to_contain_text(HOSTILE_ATTRIBUTE.replace('"', '\\"'))
    page.goto(f"{server.url}/instances?workflow=order")
    expect(page.locator(f"tr[data-id='{stack.hostile}']")).to_contain_text(HOSTILE_ATTRIBUTE)
    page.goto(f"{server.url}/events?name=hostile&key=X-9")
    expect(page.locator("table.events").last).to_contain_text("<script>window.__xss")
    page.goto(f"{server.url}/events")
    expect(page.locator("#recent")).to_contain_text("<script>window.__xss")
    assert visit.dialogs == []


def test_the_list_refreshes_itself(visit: Visit, server: Server, stack: Stack) -> None:
    page = visit.page
    page.goto(server.url + "/instances?workflow=order")
    expect(page.locator("#instances")).to_be_visible()
    started = stack.host.start_workflow("order", 1, {"order": "LIVE-1"}, reference="live")
    # No reload: htmx (served by the dashboard itself) fetches the rows again every 5 s.
    expect(page.locator(f"tr[data-id='{started}']")).to_be_visible(timeout=20_000)


def test_publish_an_event_and_retry_a_failed_step(
    visit: Visit, server: Server, stack: Stack, screenshots: Screenshots
) -> None:
    page = visit.page
    approved = stack.host.start_workflow("order", 1, {"order": "P-1"})
    wait_until(lambda: len(stack.host.get_workflow_instance(approved).execution_pointers) == 2, "the wait")
    visit.sign_in(server, then="/events")
    page.fill("#publish input[name=name]", "approved")
    page.fill("#publish input[name=key]", "P-1")
    page.fill("#publish textarea[name=data]", '{"by": "dashboard"}')
    page.click("#publish button[type=submit]")
    expect(page).to_have_url(re.compile(r"done=published"))
    expect(page.locator("table.events").last).to_contain_text('"by": "dashboard"')
    expect(page.locator("#recent tbody tr").first).to_contain_text("approved")
    screenshots.take(page, "events")
    assert stack.host.wait_for_workflow(approved, timeout=30).status is WorkflowStatus.COMPLETE

    page.goto(f"{server.url}/instances/{stack.failed}")
    errors_before = page.locator("details.error").count()
    page.select_option("#retry-step", "0")
    page.click("#retry")
    expect(page.locator("#notice")).to_have_text("Done: retry.")
    # The step fails again and the workflow is suspended again, with one more error.
    wait_until(lambda: len(stack.host.get_workflow_errors(stack.failed)) > errors_before, "the retried step's error")
    wait_until(lambda: stack.status(stack.failed) is WorkflowStatus.SUSPENDED, "the workflow to be suspended again")


def test_definitions_are_drawn(visit: Visit, server: Server, screenshots: Screenshots) -> None:
    page = visit.page
    page.goto(server.url + "/definitions")
    for name in ("order v1", "failing v1", "quick v1"):
        expect(page.get_by_role("heading", name=name)).to_be_visible()
    expect(page.locator("svg.workflow-graph")).to_have_count(3)
    expect(page.locator("svg.workflow-graph g.node.active")).to_have_count(0)
    screenshots.take(page, "definitions")
