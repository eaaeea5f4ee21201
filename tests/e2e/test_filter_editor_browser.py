"""The filter editor's webview in a real browser (Debian's Chromium, through Playwright) with a real helper.

The page is the extension's own media/filter-editor.{html,js,css}, served from 127.0.0.1 on a free port with
the placeholders filled in as the extension fills them. A stand-in for VS Code's ``acquireVsCodeApi`` sends
the page's messages to ``Bridge``, which does what the extension's FilterEditorHost does: it asks a real
``pymirrord lsp`` process and applies Save's edits to the file on disk (telling the helper, as VS Code would).

Chromium must start: where it cannot, the tests fail with the reason, so that CI never passes without them.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import ROOT
from e2e.text_edits import apply_text_edits
from pymirrord.server.rpc_client import HelperClient

try:
    from playwright.sync_api import Browser, Page, expect, sync_playwright
except ImportError:  # pragma: no cover - reported by the fixture below
    sync_playwright = None  # type: ignore[assignment]

MEDIA = ROOT / "vscode-extension" / "media"
CHROMIUM = os.environ.get("PYMIRRORD_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Where to keep a screenshot of the editor (docs/filter-editor.png is made this way); unset: none is kept.
SCREENSHOT = os.environ.get("PYMIRRORD_SCREENSHOT")
WAIT_MS = 15_000

pytestmark = pytest.mark.timeout(180)

STAND_IN = """
window.acquireVsCodeApi = () => ({
  postMessage: (message) => {
    window.pymirrordBridge(message).then((replies) => {
      for (const reply of replies) window.postMessage(reply, '*');
    });
  },
  getState: () => undefined,
  setState: () => undefined,
});
"""


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if sync_playwright is None:
        pytest.fail("Playwright (Python) is not installed: run `bash scripts/setup.sh --dev`")
    if shutil.which(CHROMIUM) is None:
        pytest.fail(
            f"Chromium is not installed at {CHROMIUM}: the filter editor's browser tests need it "
            "(`apt-get install chromium`, which `bash scripts/setup.sh --dev` does)"
        )
    with sync_playwright() as playwright:
        try:
            launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        except Exception as error:
            pytest.fail(f"Chromium ({CHROMIUM}) could not start, so the filter editor is untested: {error}")
        try:
            yield launched
        finally:
            launched.close()


class _Pages(BaseHTTPRequestHandler):
    html = ""

    def do_GET(self) -> None:
        if self.path == "/":
            body, kind = self.html.encode(), "text/html; charset=utf-8"
        elif self.path in ("/media/filter-editor.js", "/media/filter-editor.css"):
            body = (MEDIA / self.path.rsplit("/", 1)[1]).read_bytes()
            kind = "text/javascript" if self.path.endswith(".js") else "text/css"
        elif self.path == "/favicon.ico":
            # A browser tab asks for one; a webview does not.
            self.send_response(204)
            self.end_headers()
            return
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def served() -> Iterator[str]:
    """The webview's page on http://127.0.0.1:PORT/, filled in as the extension fills it."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    nonce = secrets.token_urlsafe(16)
    template = (MEDIA / "filter-editor.html").read_text(encoding="utf-8")
    _Pages.html = (
        template.replace("{{cspSource}}", origin)
        .replace("{{nonce}}", nonce)
        .replace("{{scriptUri}}", f"{origin}/media/filter-editor.js")
        .replace("{{styleUri}}", f"{origin}/media/filter-editor.css")
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"{origin}/"
    finally:
        server.shutdown()
        server.server_close()


class Bridge:
    """The extension's part, for one config file: the helper's answers to the page's messages."""

    def __init__(self, helper: HelperClient, config: Path, language_id: str) -> None:
        self.helper = helper
        self.config = config
        self.uri = config.as_uri()
        self.version = 1
        self.samples: list[dict[str, str]] | None = None
        self.saved_edits: list[list[dict[str, Any]]] = []
        self.page_errors: list[str] = []
        helper.open(self.uri, config.read_text(encoding="utf-8"), language_id=language_id)

    def handle(self, message: dict[str, Any]) -> list[dict[str, Any]]:
        kind = message.get("type")
        if kind == "ready":
            return [self.document()]
        if kind == "samples":
            self.samples = message["samples"]
            return []
        if kind == "testFilter":
            params = {"filter": message["filter"], "requests": message["requests"]}
            report = self.helper.request("pymirrord/testFilter", params)
            return [{"type": "testResult", "id": message["id"], "report": report}]
        if kind == "save":
            params = {"uri": self.uri, "filter": message["filter"]}
            result = self.helper.request("pymirrord/filterEdit", params)
            self.saved_edits.append(result["edits"])
            text = apply_text_edits(self.config.read_text(encoding="utf-8"), result["edits"])
            self.config.write_text(text, encoding="utf-8")
            self.version += 1
            self.helper.change(self.uri, text, self.version)
            return [{"type": "saved", "ok": True}, self.document()]
        return []

    def document(self) -> dict[str, Any]:
        shown = self.helper.request("pymirrord/filterDocument", {"uri": self.uri})
        return {
            "type": "document",
            "document": {**shown, "name": self.config.name},
            "samples": self.samples,
        }


def _open(browser: Browser, url: str, bridge: Bridge) -> Page:
    page = browser.new_page(viewport={"width": 1000, "height": 760})
    expect.set_options(timeout=WAIT_MS)
    # Script errors and CSP refusals would otherwise pass unseen; _close asserts there were none.
    page.on("pageerror", lambda error: bridge.page_errors.append(str(error)))
    page.on(
        "console",
        lambda message: bridge.page_errors.append(message.text) if message.type == "error" else None,
    )
    page.expose_function("pymirrordBridge", bridge.handle)
    page.add_init_script(STAND_IN)
    page.goto(url)
    expect(page.locator("#file")).to_contain_text(bridge.config.name)
    return page


def _close(page: Page, bridge: Bridge) -> None:
    page.close()
    assert bridge.page_errors == []


def _config(folder: Path, name: str, text: str) -> Path:
    config = folder / ".mirrord" / name
    config.parent.mkdir()
    config.write_text(text, encoding="utf-8")
    return config


def _verdicts(page: Page, *words: str) -> None:
    rows = page.locator("#samples tbody tr")
    expect(rows).to_have_count(len(words))
    for index, word in enumerate(words):
        expect(rows.nth(index)).to_have_attribute("data-verdict", word)


JSON_CONFIG = '{\n  "target": "netns/shop",\n  "feature": {"network": {"incoming": "steal"}}\n}\n'


def test_typing_a_filter_marks_the_samples_and_save_writes_the_file(
    browser: Browser, served: str, helper: HelperClient, tmp_path: Path
) -> None:
    config = _config(tmp_path, "mirrord.json", JSON_CONFIG)
    bridge = Bridge(helper, config, "json")
    assert [d["code"] for d in helper.diagnostics(bridge.uri, version=1)] == ["warning"]  # steal, no filter
    page = _open(browser, served, bridge)
    expect(page.locator("#summary")).to_contain_text("Steal mode")
    # No filter yet: a steal takes every request.
    _verdicts(page, "stolen", "stolen", "stolen")
    expect(page.locator("#save")).to_be_enabled()

    page.select_option("#kind", "header")
    page.locator("#single").press_sequentially("^X-User: alice$")
    _verdicts(page, "stolen", "passed", "passed")
    why = page.locator("#samples tbody tr").first.locator(".why")
    expect(why).to_contain_text("header_filter: X-User: alice")

    # A regex error is shown under the field, at the character the helper blames; Save is off.
    page.locator("#single").fill("")
    page.locator("#single").press_sequentially("^X-User: (alice")
    error = page.locator("#single-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("not a valid regular expression")
    blamed = helper.request(
        "pymirrord/testFilter", {"filter": {"header_filter": "^X-User: (alice"}, "requests": []}
    )["errors"][0]["position"]
    expect(error).to_have_attribute("data-position", str(blamed))
    expect(error.locator("pre.caret")).to_have_text(" " * blamed + "^")
    expect(page.locator("#save")).to_be_disabled()
    _verdicts(page, "unknown", "unknown", "unknown")

    page.locator("#single").fill("^X-User: (alice|bob)$")
    expect(error).to_be_hidden()
    page.click("#add-sample")
    new_row = page.locator("#samples tbody tr").nth(3)
    new_row.locator("td.path input").fill("/api/orders")
    new_row.locator("td.headers textarea").fill("Accept: */*\nX-User: carol")
    _verdicts(page, "stolen", "stolen", "passed", "passed")
    assert bridge.samples is not None and bridge.samples[3]["path"] == "/api/orders"
    page.locator("#ports").fill("8080")
    expect(page.locator("#save")).to_be_enabled()
    if SCREENSHOT:
        page.screenshot(path=SCREENSHOT, full_page=True)

    page.click("#save")
    expect(page.locator("#status")).to_have_text("Saved to mirrord.json.")
    written = config.read_text(encoding="utf-8")
    assert json.loads(written) == {
        "target": "netns/shop",
        "feature": {
            "network": {
                "incoming": {
                    "mode": "steal",
                    "http_filter": {"header_filter": "^X-User: (alice|bob)$", "ports": [8080]},
                }
            }
        },
    }
    assert written.startswith('{\n  "target": "netns/shop",\n  "feature": {"network": {"incoming": ')
    assert len(bridge.saved_edits) == 1 and len(bridge.saved_edits[0]) == 1, "one edit"
    # The helper's diagnostics follow the saved text: no more "steal without an http_filter".
    assert helper.diagnostics(bridge.uri, version=2) == []
    # The form shows the file as it is now.
    expect(page.locator("#single")).to_have_value("^X-User: (alice|bob)$")
    expect(page.locator("#ports")).to_have_value("8080")
    _close(page, bridge)


def test_mirror_mode_marks_copies_and_save_keeps_the_yaml(
    browser: Browser, served: str, helper: HelperClient, tmp_path: Path
) -> None:
    original = "# the shop's config\ntarget: netns/shop   # the pod\nfeature:\n  network:\n    dns: true\n"
    config = _config(tmp_path, "mirrord.yaml", original)
    bridge = Bridge(helper, config, "yaml")
    page = _open(browser, served, bridge)
    expect(page.locator("#summary")).to_contain_text("Mirror mode")
    expect(page.locator("#verdict-head")).to_have_text("Copied?")
    page.select_option("#kind", "any_of")
    page.locator("#item-0").fill("^X-User: bob")
    page.click("#add-item")
    page.locator(".item select").nth(1).select_option("path")
    page.locator("#item-1").fill("^/(?<health")
    item_error = page.locator("#item-1-error")
    expect(item_error).to_contain_text("not a valid regular expression")
    expect(page.locator("#item-1")).to_have_class("invalid")
    expect(page.locator("#save")).to_be_disabled()
    page.locator("#item-1").fill("^/health")
    expect(item_error).to_be_hidden()
    _verdicts(page, "passed", "copied", "copied")
    page.click("#save")
    expect(page.locator("#status")).to_have_text("Saved to mirrord.yaml.")
    assert config.read_text(encoding="utf-8") == original + (
        '    incoming:\n      http_filter:\n        any_of:\n          - header: "^X-User: bob"\n'
        '          - path: "^/health"\n'
    )
    _close(page, bridge)


def test_a_config_that_does_not_parse_shows_the_error_and_cannot_be_saved(
    browser: Browser, served: str, helper: HelperClient, tmp_path: Path
) -> None:
    broken = '[feature.network.incoming]\nmode = "steal"\nhttp_filter = { header_filter = "^X-A: 1" \n'
    config = _config(tmp_path, "mirrord.toml", broken)
    bridge = Bridge(helper, config, "toml")
    page = _open(browser, served, bridge)
    banner = page.locator("#parse-error")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("mirrord.toml:3:")
    expect(banner).to_contain_text("the file does not parse: invalid TOML")
    expect(page.locator("#save")).to_be_disabled()
    page.select_option("#kind", "path")
    page.locator("#single").fill("^/api")
    expect(page.locator("#save")).to_be_disabled()
    assert config.read_text(encoding="utf-8") == broken
    _close(page, bridge)
