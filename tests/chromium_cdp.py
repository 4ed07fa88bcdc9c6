"""A small headless-Chromium driver for the browser tests (Chrome DevTools Protocol over a websocket).

Why not ``chromium --screenshot``: a test must also know that every image loaded and that the page
raised no console error, which only the DevTools protocol reports. Why not Playwright or Selenium:
both fetch their own browser or driver; this uses the Debian ``chromium`` package and the small
``websocket-client`` package, nothing else.

    with Chromium() as browser:
        page = browser.open("http://127.0.0.1:8000/", width=1280, height=900)
        page.images        # [{"src": ..., "ok": bool, "width": int}], every <img> after loading
        page.errors        # console errors, uncaught exceptions, failed requests
        browser.screenshot(path)
"""
from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = "install it with `apt-get install -y chromium` (Debian/Ubuntu, as root); .ci/run does"
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-extensions", "--hide-scrollbars",
         "--mute-audio", "--force-device-scale-factor=1", "--disable-dev-shm-usage")

# Waits for every <img> to finish (loaded or failed), eager even if marked lazy, then lists them.
IMAGES_JS = """
(async () => {
  const imgs = Array.from(document.images);
  imgs.forEach(i => { i.loading = "eager"; });
  await Promise.all(imgs.map(i => i.complete ? null : new Promise(r => { i.onload = i.onerror = r; })));
  return imgs.map(i => ({src: (i.currentSrc || i.src).slice(0, 160), ok: i.complete && i.naturalWidth > 0,
                         width: i.naturalWidth}));
})()
"""


def find_chromium() -> str | None:
    """Path of a Chromium/Chrome binary (``$CHROMIUM`` first), or None."""
    env = os.environ.get("CHROMIUM")
    if env:
        return shutil.which(env)
    for name in CANDIDATES:
        found = shutil.which(name)
        if found:
            return found
    return None


@dataclass
class Page:
    url: str
    images: list[dict] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    title: str = ""


class Chromium:
    """One headless browser with one tab, driven over the DevTools protocol."""

    def __init__(self, binary: str | None = None, timeout: float = 60.0):
        self.binary = binary or find_chromium()
        if self.binary is None:
            raise FileNotFoundError(f"no Chromium found: {INSTALL_HINT}")
        self.timeout = timeout
        self._id = 0
        self._events: list[dict] = []

    # -- life cycle ----------------------------------------------------------------------------------
    def __enter__(self) -> "Chromium":
        import websocket  # websocket-client

        self._profile = tempfile.mkdtemp(prefix="raoutcome-chromium-")
        self.proc = subprocess.Popen([self.binary, *FLAGS, f"--user-data-dir={self._profile}",
                                      "--remote-debugging-port=0", "about:blank"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ws_url = self._devtools_url()
        self.ws = websocket.create_connection(ws_url, timeout=self.timeout, suppress_origin=True)
        target = self._call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self._call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Page", "Runtime", "Log", "Network"):
            self._call(f"{domain}.enable", session=True)
        return self

    def __exit__(self, *_exc) -> None:
        try:
            self.ws.close()
        finally:
            self.proc.kill()
            self.proc.wait(timeout=30)
            shutil.rmtree(self._profile, ignore_errors=True)

    def _devtools_url(self) -> str:
        deadline = time.monotonic() + self.timeout
        seen = []
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line and self.proc.poll() is not None:
                break
            seen.append(line)
            if "DevTools listening on " in line:
                return line.split("DevTools listening on ", 1)[1].strip()
        raise RuntimeError("Chromium did not start: " + "".join(seen)[-2000:])

    # -- protocol ------------------------------------------------------------------------------------
    def _call(self, method: str, params: dict | None = None, session: bool = False) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = self.session
        self.ws.send(json.dumps(msg))
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            reply = json.loads(self.ws.recv())
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
            self._events.append(reply)
        raise TimeoutError(method)

    def _wait_event(self, method: str, since: int) -> dict:
        deadline = time.monotonic() + self.timeout
        while time.monotonic() < deadline:
            for event in self._events[since:]:
                if event.get("method") == method:
                    return event
            since = len(self._events)
            self._events.append(json.loads(self.ws.recv()))
        raise TimeoutError(f"waiting for {method}")

    # -- what the tests use --------------------------------------------------------------------------
    def open(self, url: str, width: int = 1280, height: int = 900, settle: float = 0.5) -> Page:
        """Load ``url`` in a ``width`` x ``height`` window; return its images and errors once loaded."""
        self._call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height,
                                                          "deviceScaleFactor": 1, "mobile": False}, session=True)
        start = len(self._events)
        self._call("Page.navigate", {"url": url}, session=True)
        self._wait_event("Page.loadEventFired", start)
        images = self._call("Runtime.evaluate", {"expression": IMAGES_JS, "awaitPromise": True,
                                                 "returnByValue": True}, session=True)["result"]["value"]
        time.sleep(settle)  # late scripts (search index, clipboard) report their errors
        self._call("Runtime.evaluate", {"expression": "1"}, session=True)  # drain pending events
        title = self._call("Runtime.evaluate", {"expression": "document.title", "returnByValue": True},
                           session=True)["result"]["value"]
        return Page(url, images, self._errors(self._events[start:]), title)

    def screenshot(self, path: Path, full_height: int | None = None) -> Path:
        """PNG of the window (or the top ``full_height`` px of the page) into ``path``."""
        params: dict = {"format": "png"}
        if full_height:
            width = self._call("Runtime.evaluate", {"expression": "document.documentElement.scrollWidth",
                                                    "returnByValue": True}, session=True)["result"]["value"]
            params.update(clip={"x": 0, "y": 0, "width": width, "height": full_height, "scale": 1},
                          captureBeyondViewport=True)
        data = self._call("Page.captureScreenshot", params, session=True)["data"]
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_bytes(base64.b64decode(data))
        os.replace(tmp, path)
        return path

    @staticmethod
    def _errors(events: list[dict]) -> list[str]:
        out = []
        for event in events:
            method, params = event.get("method"), event.get("params", {})
            if method == "Runtime.consoleAPICalled" and params.get("type") in ("error", "assert"):
                out.append("console: " + " ".join(str(a.get("value", a.get("description", "")))
                                                  for a in params.get("args", [])))
            elif method == "Runtime.exceptionThrown":
                details = params.get("exceptionDetails", {})
                out.append("exception: " + str(details.get("exception", {}).get("description", details.get("text"))))
            elif method == "Log.entryAdded" and params.get("entry", {}).get("level") == "error":
                entry = params["entry"]
                out.append(f"log: {entry.get('text')} {entry.get('url', '')}".strip())
            elif method == "Network.loadingFailed" and not params.get("canceled"):
                out.append(f"network: {params.get('errorText')} ({params.get('type')})")
        return out
