"""The workspace's web page, driven in headless Chromium the way a person uses the demo: type ``/services
failed``, read the answer, click Details, watch an alert arrive live in #alerts. Screenshots land in
``artifacts/`` so a reviewer sees what the page looked like.

The page is checked for the one thing that must never break: untrusted text from the cloud API (service names,
error messages) is shown as text, never run as markup. It is also driven at a phone's width, and with no
colour-emoji font, where it must still read.

Browser tests skip with the reason when there is no Chromium or playwright (``tests/browser.py``); the page's
HTTP routes are checked without a browser.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from services_bot.emulator import EmulatorServer, EmulatorSettings
from services_bot.workspace import WorkspaceServer, WorkspaceSettings
from slack_sdk.web.async_client import AsyncWebClient

from services_bot.serve import BackgroundServe
from tests import browser
from tests.conftest import Control, slack_settings

HOSTILE_NAME = "<b>evil</b> & co"
HOSTILE_ERROR = '<img src=x onerror="window.__pwned=1"> <!channel> & <script>window.__pwned=2</script>'


# -- the page's routes (no browser needed) ------------------------------------------------------------------


def test_page_and_static_files_are_served(workspace_server: WorkspaceServer) -> None:
    with httpx.Client(base_url=workspace_server.url, trust_env=False) as http:
        page = http.get("/")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        assert "/static/app.js" in page.text and "/static/style.css" in page.text
        csp = page.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp  # no inline or remote script
        assert page.headers["x-content-type-options"] == "nosniff"
        js = http.get("/static/app.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "innerHTML" not in js.text.replace("never innerHTML", "")  # the page builds the DOM by hand
        assert http.get("/static/style.css").headers["content-type"].startswith("text/css")
        for path in ("/static/../page.py", "/static/page.py", "/static/nope.js", "/static/%2e%2e%2fpage.py"):
            assert http.get(path).status_code == 404, path


# -- the demo in a browser ----------------------------------------------------------------------------------

needs_browser = pytest.mark.skipif(browser.skip_reason() is not None, reason=browser.skip_reason() or "")


@pytest.fixture(scope="module")
def demo_stack() -> Iterator[dict[str, Any]]:
    """Its own small fleet, workspace and bot, so the page shows a short, predictable channel and no other
    test's messages. Two services are failed on purpose, one with a hostile name and error message."""
    with (
        EmulatorServer(EmulatorSettings(port=0, services=60, workspaces=0, seed=21)) as emulator,
        WorkspaceServer(WorkspaceSettings()) as workspace,
    ):
        control = Control(emulator.url)
        for s in control.list_raw(emulator.settings.project_id, emulator.settings.token)["services"]:
            if s["status"] == "failed":
                control.set_status(s["service_id"], "running")
        control.add(service_name="ocr-prod", status="failed", error_msg="OOMKilled: container exceeded 8Gi")
        control.add(service_name=HOSTILE_NAME, status="failed", error_msg=HOSTILE_ERROR)
        flipped = control.add(service_name="asr-live", status="running")
        settings = slack_settings(
            emulator,
            workspace,
            services_bot_max_retries=2,
            services_bot_poll_seconds=0.3,
            services_bot_alert_channel="C0ALERTS",
        )
        with BackgroundServe(settings) as bot:
            workspace.settings.app_url = bot.url + "/slack/events"
            yield {"emulator": emulator, "workspace": workspace, "bot": bot, "control": control, "flip": flipped}
        control.http.close()
        # A closed page leaves its long-poll waiting on the server for up to 20 s, which would hold up the
        # workspace's shutdown; any event (a reset here) answers it at once.
        httpx.post(workspace.url + "/_workspace/reset", trust_env=False)


@needs_browser
async def test_demo_page_in_chromium(demo_stack: dict[str, Any]) -> None:
    workspace: WorkspaceServer = demo_stack["workspace"]
    browser.ARTIFACTS.mkdir(exist_ok=True)
    async with browser.chromium() as context:
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda exc: problems.append(f"page error: {exc}"))
        page.on(
            "console", lambda msg: problems.append(f"console {msg.type}: {msg.text}") if msg.type == "error" else None
        )
        try:
            await _walk_through(page, workspace, demo_stack["control"], demo_stack["flip"])
        except BaseException:
            await page.screenshot(path=str(browser.ARTIFACTS / "demo-page-failure.png"), full_page=True)
            raise
        assert not problems, problems


async def _walk_through(page: Any, workspace: WorkspaceServer, control: Control, flipped: dict[str, Any]) -> None:
    from playwright.async_api import expect

    await page.goto(workspace.url + "/#general")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await expect(page.locator("li.channel.active")).to_have_attribute("data-name", "general")
    await expect(page.locator("li.channel")).to_have_count(2)
    await page.evaluate("window.__sameDocument = true")

    # a /services command goes to the bot as a signed slash command; its answer is rendered from Block Kit
    await page.locator("#input").fill("/services failed")
    await page.locator("#input").press("Enter")
    answer = page.locator("article.msg", has=page.locator(".bk-header", has_text=re.compile(r"services?: failed")))
    await expect(answer).to_have_count(1)
    await expect(answer.locator(".ephemeral-note")).to_have_text("Only visible to you")
    await expect(answer.locator(".bk-section", has_text="ocr-prod")).to_contain_text("failed")
    await expect(answer.locator(".bk-quote").first).to_be_visible()
    # hostile text is shown as text: no element made from it, no script run
    await expect(answer).to_contain_text(HOSTILE_NAME)
    await expect(answer).to_contain_text('<img src=x onerror="window.__pwned=1">')
    assert await page.locator("#messages img, #messages script, #messages b").count() == 0
    assert await page.evaluate("window.__pwned === undefined")
    await page.screenshot(path=str(browser.ARTIFACTS / "demo-page-1-failed.png"))

    # Details sends a signed block_actions payload; the details answer arrives as a new message
    row = answer.locator(".bk-section", has_text="ocr-prod")
    await row.get_by_role("button", name="Details").click()
    details = page.locator("article.msg", has=page.locator(".bk-header", has_text="ocr-prod (failed)"))
    await expect(details).to_have_count(1)
    await expect(details.locator(".bk-fields").first).to_contain_text("Service id")
    await expect(details).to_contain_text("OOMKilled: container exceeded 8Gi")
    await expect(details).to_contain_text("Latest abnormal events")  # a failed service says why (issue 15)
    await expect(details.get_by_role("button", name="Timeline")).to_have_count(1)
    await details.scroll_into_view_if_needed()
    await page.screenshot(path=str(browser.ARTIFACTS / "demo-page-2-details.png"))

    # a service fails in ModelArts while the page is open: the watcher's alert lights #alerts up, no reload
    alerts = page.locator("li.channel[data-name=alerts]")
    await expect(alerts).not_to_have_class(re.compile(r"\bunread\b"))
    control.set_status(flipped["service_id"], "failed", "Health check failed: /health returned 503")
    await expect(alerts).to_have_class(re.compile(r"\bunread\b"))
    await expect(alerts.locator(".unread-dot")).to_be_visible()
    await page.screenshot(path=str(browser.ARTIFACTS / "demo-page-3-unread.png"))
    await alerts.click()
    alert = page.locator("article.msg", has_text="asr-live")
    await expect(alert).to_be_visible()
    await expect(alert).to_contain_text("(was running)")
    await expect(alert).to_contain_text("Health check failed: /health returned 503")
    # the status is in words beside its emoji; the emoji itself as a glyph only where a font draws it in colour
    await expect(alert).to_contain_text("failed · asr-live")
    colour = await page.evaluate("document.documentElement.dataset.emoji") == "colour"
    await expect(alert.locator(".emoji").first).to_have_text("\U0001f534" if colour else ":red_circle:")
    await expect(alert.get_by_role("button", name="Mute 1h")).to_be_visible()
    await expect(alerts).not_to_have_class(re.compile(r"\bunread\b"))
    assert await page.evaluate("window.__sameDocument === true"), "the page reloaded instead of updating live"
    await page.screenshot(path=str(browser.ARTIFACTS / "demo-page-4-alert.png"))

    # the mrkdwn renderer: links only for safe schemes, escapes decoded as text, mentions by name
    rendered = await page.evaluate(
        """() => {
            const node = window.workspacePage.mrkdwn(
                "<javascript:alert(1)|click> <https://example.com/a?b=1&amp;c=2|site> &lt;b&gt; <@U0DEMO> _it_ ~s~");
            return {text: node.textContent, links: [...node.querySelectorAll('a')].map(a => a.href),
                    tags: [...node.querySelectorAll('*')].map(n => n.tagName.toLowerCase())};
        }"""
    )
    assert rendered["text"] == "click site <b> @Demo User it s"
    assert rendered["links"] == ["https://example.com/a?b=1&c=2"]
    assert sorted(rendered["tags"]) == ["a", "em", "s", "span", "span"]

    # Slack dates render in the reader's zone and stay current ("Today 14:02"), not as their UTC fallback
    dates = await page.evaluate(
        """() => {
            const now = Math.floor(Date.now() / 1000);
            const node = window.workspacePage.mrkdwn(
                `<!date^${now}^{date_short_pretty} {time}|2000-01-01 00:00 UTC> <!subteam^S0ONCALL|oncall>`);
            const d = new Date(now * 1000), pad = (n) => String(n).padStart(2, "0");
            return {text: node.textContent, expected: `Today ${pad(d.getHours())}:${pad(d.getMinutes())} @oncall`};
        }"""
    )
    assert dates["text"] == dates["expected"], dates


@needs_browser
async def test_threads_updates_and_failures_in_chromium(demo_stack: dict[str, Any]) -> None:
    """What the walk-through does not show: threads, edits in place, deletions, ephemeral posts, people's
    messages, and the notices for a bot that cannot be reached (Slack's "failed with the error")."""
    workspace: WorkspaceServer = demo_stack["workspace"]
    bot_url = workspace.settings.app_url
    browser.ARTIFACTS.mkdir(exist_ok=True)
    async with browser.chromium() as context:
        page = await context.new_page()
        try:
            await _threads_updates_and_failures(page, workspace)
        except BaseException:
            await page.screenshot(path=str(browser.ARTIFACTS / "demo-page-failure-2.png"), full_page=True)
            raise
        finally:
            workspace.settings.app_url = bot_url


async def _threads_updates_and_failures(page: Any, workspace: WorkspaceServer) -> None:
    from playwright.async_api import expect

    client = AsyncWebClient(token=workspace.settings.bot_token, base_url=workspace.api_url)
    await page.goto(workspace.url + "/#general")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    await page.evaluate("window.__sameDocument = true")

    # a person writes (plain text goes to the channel as the user, not to the bot)
    await page.locator("#input").fill("hello *team*")
    await page.locator("#input").press("Enter")
    mine = page.locator("article.msg.person", has_text="hello team")
    await expect(mine.locator(".msg-name")).to_have_text("Demo User")
    await expect(mine.locator("strong")).to_have_text("team")

    # a thread: replies sit under an "N replies" toggle
    parent = await client.chat_postMessage(channel="C0GENERAL", text="Deploy of ocr-prod started")
    for text in ("step 1: pull image", "step 2: rollout"):
        await client.chat_postMessage(channel="C0GENERAL", text=text, thread_ts=parent["ts"])
    top = page.locator(f'article.msg[data-ts="{parent["ts"]}"]')
    await expect(top.locator(".thread-toggle")).to_have_text("2 replies")
    await expect(page.locator("#messages > article", has_text="step 1")).to_have_count(0)
    await top.locator(".thread-toggle").click()
    await expect(top.locator(".thread article.msg.reply")).to_have_count(2)

    # chat.update refreshes the message in place; chat.delete removes it; postEphemeral is marked
    await client.chat_update(
        channel="C0GENERAL", ts=parent["ts"], text="Deploy of ocr-prod *finished* :white_check_mark:"
    )
    await expect(top.locator(".msg-body > .mrkdwn").first).to_have_text("Deploy of ocr-prod finished \u2705")
    await expect(top.locator(".msg-edited")).to_have_text("(edited)")
    await expect(top.locator(".thread article.msg.reply")).to_have_count(2)  # still open after the update
    gone = await client.chat_postMessage(channel="C0GENERAL", text="this will be deleted")
    await expect(page.locator("article.msg", has_text="this will be deleted")).to_have_count(1)
    await client.chat_delete(channel="C0GENERAL", ts=gone["ts"])
    await expect(page.locator("article.msg", has_text="this will be deleted")).to_have_count(0)
    await client.chat_postEphemeral(channel="C0GENERAL", user="U0DEMO", text="just for you")
    await expect(page.locator("article.msg.ephemeral", has_text="just for you")).to_contain_text("Only visible to you")

    # the bot cannot be reached: Slack's own notice for a command, an inline warning for a button
    workspace.settings.app_url = "http://127.0.0.1:9/slack/events"
    await page.locator("#input").fill("/services failed")
    await page.locator("#input").press("Enter")
    notice = page.locator("article.msg.slackbot", has_text="/services failed with the error")
    await expect(notice).to_contain_text('"dispatch_failed"')
    await expect(notice).to_contain_text("Only visible to you")
    await client.chat_postMessage(
        channel="C0GENERAL",
        text="a button",
        blocks=[
            {"type": "section", "text": {"type": "mrkdwn", "text": "Mute alerts for *ocr-prod*?"}},
            {
                "type": "actions",
                "elements": [
                    {
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Mute"},
                        "action_id": "mute_service",
                        "value": "ocr-prod",
                        "style": "danger",
                    }
                ],
            },
        ],
    )
    muted = page.locator("article.msg", has_text="Mute alerts for")
    await muted.get_by_role("button", name="Mute").click()
    await expect(muted.locator(".click-error")).to_contain_text("dispatch_failed")
    workspace.settings.app_url = None  # the control API refuses (409): the page says so itself
    await page.locator("#input").fill("/services summary")
    await page.locator("#input").press("Enter")
    await expect(page.locator("article.msg.local", has_text="/services failed with the error")).to_contain_text(
        "no app_url"
    )
    assert await page.evaluate("window.__sameDocument === true")
    await page.screenshot(path=str(browser.ARTIFACTS / "demo-page-5-threads-and-errors.png"))


# -- any screen, any fonts ----------------------------------------------------------------------------------

PHONE = {"width": 390, "height": 844}


@needs_browser
async def test_on_a_phone_the_messages_take_the_width_and_the_channel_list_opens_from_a_button(
    demo_stack: dict[str, Any], tmp_path: Path
) -> None:
    """At 390 px the channel list is out of the way until asked for, messages use the screen's width, nothing
    scrolls sideways, and switching channels (and hearing of an alert elsewhere) works from the list's button."""
    workspace: WorkspaceServer = demo_stack["workspace"]
    async with browser.chromium(**PHONE) as context:
        page = await context.new_page()
        try:
            await _on_a_phone(page, workspace, demo_stack["control"], tmp_path)
        except BaseException:
            await page.screenshot(path=str(tmp_path / "demo-page-phone-failure.png"), full_page=True)
            raise
        finally:
            _keep(tmp_path, "demo-page-phone-failure.png")


async def _on_a_phone(page: Any, workspace: WorkspaceServer, control: Control, shots: Path) -> None:
    from playwright.async_api import expect

    await page.goto(workspace.url + "/#general")
    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
    sidebar, toggle = page.locator("#sidebar"), page.get_by_role("button", name="Channels")
    await expect(sidebar).to_be_hidden()
    await expect(toggle).to_be_visible()
    await expect(toggle).to_have_attribute("aria-expanded", "false")

    answers = page.locator("article.msg", has=page.locator(".bk-header", has_text=re.compile(r"services?: failed")))
    before = await answers.count()  # the module's other tests may have asked already
    await page.locator("#input").fill("/services failed")
    await page.locator("#input").press("Enter")
    await expect(answers).to_have_count(before + 1)
    answer = answers.last
    row = answer.locator(".bk-section", has_text="ocr-prod")
    await expect(row).to_contain_text("failed · ocr-prod")
    width = await answer.locator(".msg-main").evaluate("node => node.getBoundingClientRect().width")
    assert width > 300, f"the message column is {width} px wide on a 390 px screen"
    # words wrap between words: the error line is a few lines tall, not one character per line
    quote = answer.locator(".bk-quote", has_text="OOMKilled").first
    lines = await quote.evaluate("q => q.getBoundingClientRect().height / parseFloat(getComputedStyle(q).lineHeight)")
    assert lines < 3, f"'OOMKilled: container exceeded 8Gi' takes {lines:.1f} lines"
    assert await _fits_the_screen(page)
    details = row.get_by_role("button", name="Details")
    box = await details.bounding_box()
    assert box is not None and box["x"] + box["width"] <= PHONE["width"], box
    await page.screenshot(path=str(shots / "demo-page-phone.png"))
    _keep(shots, "demo-page-phone.png")

    # an alert in #alerts while #general is shown: the button says there is something new
    await expect(toggle).to_have_attribute("data-unread", "false")
    control.add(service_name="phone-alert", status="failed", error_msg="CrashLoopBackOff")
    await expect(toggle).to_have_attribute("data-unread", "true")
    await expect(toggle).to_have_accessible_name("Channels (new messages)")

    await toggle.click()
    await expect(sidebar).to_be_visible()
    await expect(toggle).to_have_attribute("aria-expanded", "true")
    alerts = page.locator("li.channel[data-name=alerts]")
    await expect(alerts).to_have_class(re.compile(r"\bunread\b"))
    assert await _fits_the_screen(page)
    await page.screenshot(path=str(shots / "demo-page-phone-channels.png"))
    _keep(shots, "demo-page-phone-channels.png")
    await alerts.click()
    await expect(sidebar).to_be_hidden()
    await expect(page.locator("#channel-title")).to_have_text("# alerts")
    await expect(toggle).to_have_attribute("data-unread", "false")
    alert = page.locator("article.msg", has_text="phone-alert")
    await expect(alert).to_contain_text("failed · phone-alert")
    await expect(alert).to_contain_text("CrashLoopBackOff")
    assert await _fits_the_screen(page)

    # the backdrop and Escape close the list without switching
    await toggle.click()
    await expect(sidebar).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(sidebar).to_be_hidden()
    await toggle.click()
    await page.mouse.click(PHONE["width"] - 20, PHONE["height"] // 2)  # beside the list, on the backdrop
    await expect(sidebar).to_be_hidden()
    await expect(page.locator("#channel-title")).to_have_text("# alerts")


async def _fits_the_screen(page: Any) -> bool:
    return bool(await page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"))


def _keep(folder: Path, name: str) -> None:
    """A screenshot made in the test's tmp dir, copied to artifacts/ for CI and reviewers, when there is one."""
    if (folder / name).exists():
        browser.ARTIFACTS.mkdir(exist_ok=True)
        shutil.copy(folder / name, browser.ARTIFACTS / name)


@needs_browser
async def test_without_a_colour_emoji_font_statuses_read_in_words_and_no_emoji_is_a_blank_box(
    demo_stack: dict[str, Any], tmp_path: Path
) -> None:
    """Debian's Chromium without fonts-noto-color-emoji (here: fontconfig told to skip every colour font) draws
    emoji as empty boxes. The page notices, shows emoji by their :name:, and every status still reads in words."""
    workspace: WorkspaceServer = demo_stack["workspace"]
    env = {"FONTCONFIG_FILE": str(browser.fontconfig_without_colour_fonts(tmp_path))}
    async with browser.chromium(env=env) as context:
        page = await context.new_page()
        await page.goto(workspace.url + "/#general")
        await expect_live(page)
        assert await page.evaluate("document.documentElement.dataset.emoji") == "text"
        await page.locator("#input").fill("/services summary")
        await page.locator("#input").press("Enter")
        summary = page.locator("article.msg", has=page.locator(".bk-field", has_text="By status")).last
        await summary.wait_for()
        by_status = await summary.locator(".bk-field", has_text="By status").inner_text()
        for status in ("running", "failed"):
            assert re.search(rf":\S+: {status}: \d+", by_status), by_status
        row = summary.locator(".bk-section", has_text="ocr-prod")
        assert (await row.inner_text()).startswith(":red_circle: failed · ocr-prod")
        glyphs = await page.evaluate(
            "[...document.querySelectorAll('#messages .emoji')].map(e => e.textContent).filter(t => !/^:.+:$/.test(t))"
        )
        assert glyphs == [], f"emoji drawn as glyphs with no font for them: {glyphs}"
        await page.screenshot(path=str(tmp_path / "demo-page-no-emoji-font.png"))
        _keep(tmp_path, "demo-page-no-emoji-font.png")


async def expect_live(page: Any) -> None:
    from playwright.async_api import expect

    await expect(page.locator("#conn")).to_have_attribute("data-state", "live")
