"""A small headless-Chromium driver over the Chrome DevTools Protocol (CDP), for the UI tests.

Starts Debian's ``chromium`` with ``--remote-debugging-port=0``, reads the port it chose from
``<profile>/DevToolsActivePort`` and talks CDP to the page over a websocket (``websockets``). Clicks and
typing are real input events (``Input.dispatchMouseEvent``, ``Input.insertText``), so React sees them as a
person's. Every host but 127.0.0.1 resolves to nothing: the browser cannot reach the network.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

CHROMIUM_CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "the UI tests need a Chromium browser: on Debian/Ubuntu `apt-get install -y chromium` "
    "(or set CHROMIUM=/path/to/chrome)"
)

#: JS helpers injected into every evaluation: find elements by visible text, describe what is on the page
JS_HELPERS = r"""
(() => {
  const visible = (el) => !!(el && el.getClientRects().length) && getComputedStyle(el).visibility !== 'hidden';
  const norm = (s) => (s || '').replace(/\s+/g, ' ').trim();
  window.__ui = {
    visible, norm,
    byText(selector, text, exact) {
      const want = norm(text).toLowerCase();
      const els = [...document.querySelectorAll(selector)].filter(visible);
      return els.find((el) => {
        const got = norm(el.innerText || el.textContent || el.getAttribute('aria-label')).toLowerCase();
        return exact ? got === want : got.includes(want);
      }) || null;
    },
  };
})();
"""


#: what Chromium answers when the page changed under a running script
NAVIGATION_ERRORS = ("navigated or closed", "Execution context was destroyed", "Cannot find context")


class CDPError(RuntimeError):
    """A CDP command failed, a page script threw, or a wait ran out; the message says what."""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary: ``$CHROMIUM``, else the first of the usual names on ``PATH``."""
    explicit = os.environ.get("CHROMIUM")
    if explicit:
        return explicit if Path(explicit).exists() else None
    for name in CHROMIUM_CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


class Browser:
    """A headless Chromium with one page, driven over CDP.

    :param binary: the browser executable.
    :param artifacts: folder for screenshots.
    :param width: window width in CSS pixels.
    :param height: window height.
    """

    def __init__(self, binary: str, artifacts: Path, width: int = 1440, height: int = 1000) -> None:
        self.binary = binary
        self.artifacts = Path(artifacts)
        self.artifacts.mkdir(parents=True, exist_ok=True)
        self.width, self.height = width, height
        self._profile = tempfile.mkdtemp(prefix="ui-chromium-")
        self._proc: subprocess.Popen[bytes] | None = None
        self._ws: Any = None
        self._next_id = 0
        self.console: list[str] = []
        #: ``(url, status)`` of every HTTP response the page received, in order
        self.responses: list[tuple[str, int]] = []
        self._shots = 0

    # ---------------------------------------------------------------- process
    def start(self, timeout: float = 60.0) -> Browser:
        """Launch the browser and attach to its page.

        :param timeout: seconds to wait for the DevTools endpoint.
        :raises CDPError: when the browser exits or does not open its DevTools port.
        """
        from websockets.sync.client import connect

        args = [
            self.binary,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-first-run",
            "--no-default-browser-check",
            "--no-proxy-server",
            # nothing but loopback: every other host name resolves to nothing
            "--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1",
            f"--user-data-dir={self._profile}",
            f"--window-size={self.width},{self.height}",
            "--remote-debugging-address=127.0.0.1",
            "--remote-debugging-port=0",
            "about:blank",
        ]
        log_path = self.artifacts / "chromium.log"
        with log_path.open("wb") as log_fh:
            self._proc = subprocess.Popen(args, stdout=log_fh, stderr=subprocess.STDOUT, start_new_session=True)
        port_file = Path(self._profile) / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not (port_file.exists() and port_file.read_text().strip()):
            if self._proc.poll() is not None:
                raise CDPError(f"{self.binary} exited (code {self._proc.returncode}); see {log_path}")
            if time.monotonic() > deadline:
                raise CDPError(f"{self.binary} opened no DevTools port within {timeout:.0f}s; see {log_path}")
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        while True:
            with opener.open(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
                pages = [t for t in json.loads(resp.read()) if t.get("type") == "page"]
            if pages:
                break
            if time.monotonic() > deadline:
                raise CDPError("the browser has no page to attach to")
            time.sleep(0.1)
        # no keepalive pings (a busy page answers late; loopback needs none) and no queue limit (events pile up
        # between commands; a full queue would stop the reader)
        self._ws = connect(
            pages[0]["webSocketDebuggerUrl"],
            proxy=None,
            max_size=None,
            max_queue=None,
            ping_interval=None,
            open_timeout=timeout,
        )
        for domain in ("Page", "Runtime", "Network"):
            self.send(f"{domain}.enable")
        self.send(
            "Emulation.setDeviceMetricsOverride",
            width=self.width,
            height=self.height,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.send("Page.addScriptToEvaluateOnNewDocument", source=JS_HELPERS)
        return self

    def close(self) -> None:
        """Close the websocket, stop the browser, remove its profile."""
        if self._ws is not None:
            with contextlib.suppress(Exception):
                self._ws.close()
            self._ws = None
        if self._proc is not None and self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._proc.pid, 15)
            try:
                self._proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self._proc.pid, 9)
                self._proc.wait(timeout=10)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Browser:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -------------------------------------------------------------------- CDP
    def send(self, method: str, timeout: float = 60.0, **params: Any) -> dict[str, Any]:
        """Send one CDP command and return its result (events that arrive meanwhile are kept).

        :param method: e.g. ``Page.navigate``.
        :param timeout: seconds to wait for the answer.
        :param params: the command's parameters.
        :raises CDPError: when the browser answers with an error.
        """
        self._next_id += 1
        msg_id = self._next_id
        self._ws.send(json.dumps({"id": msg_id, "method": method, "params": params}))
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise CDPError(f"no answer to {method} within {timeout:.0f}s")
            msg = json.loads(self._ws.recv(timeout=remaining))
            if msg.get("id") == msg_id:
                if "error" in msg:
                    raise CDPError(f"{method}: {msg['error'].get('message')} {msg['error'].get('data', '')}")
                return msg.get("result", {})
            self._event(msg)

    def _event(self, msg: dict[str, Any]) -> None:
        if msg.get("method") == "Network.responseReceived":
            response = msg["params"]["response"]
            self.responses.append((response.get("url", ""), int(response.get("status", 0))))
        elif msg.get("method") == "Runtime.consoleAPICalled":
            params = msg["params"]
            text = " ".join(str(a.get("value", a.get("description", ""))) for a in params.get("args", []))
            self.console.append(f"{params.get('type')}: {text}")
        elif msg.get("method") == "Runtime.exceptionThrown":
            details = msg["params"].get("exceptionDetails", {})
            self.console.append(f"exception: {details.get('exception', {}).get('description') or details}")

    def eval(self, expression: str, timeout: float = 60.0) -> Any:
        """Evaluate JavaScript in the page (promises awaited) and return its JSON value.

        :param expression: the script; ``__ui`` helpers are available.
        :param timeout: seconds.
        :raises CDPError: when the script throws.
        """
        result = self.send(
            "Runtime.evaluate",
            timeout=timeout,
            expression=f"(() => {{ if (!window.__ui) {{ {JS_HELPERS} }} }})(); {expression}",
            returnByValue=True,
            awaitPromise=True,
        )
        if "exceptionDetails" in result:
            details = result["exceptionDetails"]
            text = details.get("exception", {}).get("description") or details.get("text")
            raise CDPError(f"script failed: {text}\n--- script:\n{expression}")
        return result.get("result", {}).get("value")

    # ------------------------------------------------------------------ pages
    def goto(self, url: str, timeout: float = 60.0) -> None:
        """Open ``url`` and wait until the document has loaded.

        :param url: the address.
        :param timeout: seconds.
        """
        result = self.send("Page.navigate", url=url)
        if result.get("errorText"):
            raise CDPError(f"could not open {url}: {result['errorText']}")
        self.wait_for("document.readyState === 'complete'", f"{url} to load", timeout=timeout)

    @property
    def url(self) -> str:
        """The page's current address."""
        return self.eval("location.href")

    def text(self) -> str:
        """The page's visible text."""
        return self.eval("document.body ? document.body.innerText : ''") or ""

    def wait_for(self, expression: str, what: str, timeout: float = 60.0, interval: float = 0.25) -> Any:
        """Poll a JavaScript expression until it is truthy; return its value.

        :param expression: the expression.
        :param what: what is awaited, for the error message.
        :param timeout: seconds.
        :param interval: seconds between polls.
        :raises CDPError: on timeout (a screenshot of the page is saved first).
        """
        deadline = time.monotonic() + timeout
        while True:
            try:
                value = self.eval(expression)
            except CDPError as exc:
                # the page navigated (a redirect, a route change) while the script ran: ask again
                if not any(sign in str(exc) for sign in NAVIGATION_ERRORS):
                    raise
                value = None
            if value:
                return value
            if time.monotonic() > deadline:
                shot = self.screenshot(f"timeout-{what}")
                raise CDPError(
                    f"waited {timeout:.0f}s for {what}; page {self.url}; screenshot {shot}\n"
                    f"page text:\n{self.text()[:3000]}"
                )
            time.sleep(interval)

    def wait_response(self, fragment: str, what: str, since: int = 0, timeout: float = 60.0) -> tuple[str, int]:
        """Wait until the page has received a response whose URL contains ``fragment``; return it.

        :param fragment: part of the URL, e.g. ``/api/v2/importErrors``.
        :param what: what is awaited, for the error message.
        :param since: ignore responses before this index of :attr:`responses`.
        :param timeout: seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            for url, status in self.responses[since:]:
                if fragment in url:
                    return url, status
            if time.monotonic() > deadline:
                shot = self.screenshot(f"timeout-{what}")
                raise CDPError(f"the page made no request to {fragment} within {timeout:.0f}s ({what}); {shot}")
            self.eval("1")  # pumps the pending events
            time.sleep(0.2)

    def screenshot(self, name: str) -> Path:
        """Save a PNG of the whole page as ``<artifacts>/<NN>-<name>.png``.

        :param name: what the screenshot shows.
        """
        self._shots += 1
        safe = "".join(c if c.isalnum() or c in "-_" else "-" for c in name)[:80]
        path = self.artifacts / f"{self._shots:02d}-{safe}.png"
        data = self.send("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        path.write_bytes(base64.b64decode(data))
        return path

    # ------------------------------------------------------------------ input
    def _center(self, js_element: str, what: str, timeout: float) -> tuple[float, float]:
        box = self.wait_for(
            f"""(() => {{
                const el = {js_element};
                if (!el || !__ui.visible(el)) return null;
                el.scrollIntoView({{block: 'center', inline: 'center'}});
                const r = el.getBoundingClientRect();
                return r.width > 0 && r.height > 0 ? [r.x + r.width / 2, r.y + r.height / 2] : null;
            }})()""",
            what,
            timeout=timeout,
        )
        return float(box[0]), float(box[1])

    def click(self, js_element: str, what: str, timeout: float = 30.0) -> None:
        """Click the element a JavaScript expression returns, with real mouse events at its centre.

        :param js_element: expression returning the element (or ``null`` while it is not there).
        :param what: a description for errors.
        :param timeout: seconds to wait for the element.
        """
        x, y = self._center(js_element, what, timeout)
        for kind in ("mouseMoved", "mousePressed", "mouseReleased"):
            extra = {"button": "left", "clickCount": 1} if kind != "mouseMoved" else {}
            self.send("Input.dispatchMouseEvent", type=kind, x=x, y=y, **extra)

    def click_text(self, selector: str, text: str, timeout: float = 30.0, exact: bool = False) -> None:
        """Click the first visible element matching ``selector`` whose text contains ``text``.

        :param selector: CSS selector, e.g. ``button``.
        :param text: visible text (case-insensitive).
        :param timeout: seconds.
        :param exact: require the whole text to match.
        """
        self.click(
            f"__ui.byText({json.dumps(selector)}, {json.dumps(text)}, {json.dumps(exact)})",
            f"{selector} with text {text!r}",
            timeout,
        )

    def fill(self, js_element: str, value: str, what: str, timeout: float = 30.0) -> None:
        """Replace the content of an input: click it, select all, type ``value``.

        :param js_element: expression returning the input.
        :param value: the new text.
        :param what: a description for errors.
        :param timeout: seconds.
        """
        self.click(js_element, what, timeout)
        self.eval(f"(() => {{ const el = {js_element}; el.focus(); if (el.select) el.select(); }})()")
        self.key("a", modifiers=2)  # Ctrl+A also selects in editors that are not <input>
        self.key("Backspace")
        if value:
            self.send("Input.insertText", text=value)

    def key(self, key: str, modifiers: int = 0) -> None:
        """Press and release one key.

        :param key: ``Enter``, ``Backspace``, ``Tab``, ``Escape`` or a single character.
        :param modifiers: CDP modifier bits (2 = Ctrl).
        """
        codes = {"Enter": 13, "Backspace": 8, "Tab": 9, "Escape": 27}
        code = codes.get(key, ord(key.upper()) if len(key) == 1 else 0)
        base = {"key": key, "windowsVirtualKeyCode": code, "modifiers": modifiers}
        if len(key) == 1:
            base["code"] = f"Key{key.upper()}"
        if key == "Enter":
            base["text"] = "\r"
        self.send("Input.dispatchKeyEvent", type="keyDown" if "text" in base else "rawKeyDown", **base)
        self.send("Input.dispatchKeyEvent", type="keyUp", **base)
