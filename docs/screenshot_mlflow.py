"""Screenshots of the MLflow UI on a sweep's runs, taken in a real browser (headless Chromium):
the experiment's runs table and the sweep run's page with its description.

    .venv/bin/python docs/screenshot_mlflow.py --tracking-uri sqlite:///mlflow.db \\
        --experiment quickstart --out docs/images

It starts `mlflow server` on a free port of 127.0.0.1 on the store, and Chromium
(`--chromium`, else the first of chromium, chromium-browser, google-chrome on the PATH;
Debian: `apt-get install chromium`), drives Chromium over its DevTools protocol with aiohttp
(which Ray's dashboard installs), and stops both. No part of the test suite needs it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
from mlflow.tracking import MlflowClient

WINDOW = (1600, 1000)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_for(url: str, timeout_s: float, process: subprocess.Popen) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited ({process.returncode}) before {url} "
                               "answered")
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s")


class Page:
    """One browser tab over the DevTools protocol."""

    def __init__(self, socket_):
        self.socket, self.next_id = socket_, 0

    async def call(self, method: str, **params) -> dict:
        self.next_id += 1
        await self.socket.send_json({"id": self.next_id, "method": method, "params": params})
        async for message in self.socket:
            reply = json.loads(message.data)
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})
        raise RuntimeError(f"{method}: the browser closed the connection")

    async def evaluate(self, expression: str):
        result = await self.call("Runtime.evaluate", expression=expression, returnByValue=True,
                                 awaitPromise=True)
        return result.get("result", {}).get("value")

    async def open(self, url: str, text: str, timeout_s: float = 60.0) -> None:
        """Go to `url` and wait until the page shows `text` and has settled."""
        await self.call("Page.navigate", url=url)
        deadline = time.monotonic() + timeout_s
        while not await self.evaluate(f"document.body && document.body.innerText.includes("
                                      f"{json.dumps(text)})"):
            if time.monotonic() > deadline:
                shown = await self.evaluate("document.body ? document.body.innerText : ''")
                raise TimeoutError(f"{url} did not show {text!r} within {timeout_s:.0f} s; it "
                                   f"shows: {' '.join((shown or '').split())[:500]!r}")
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # the rest of the page's requests and its fonts

    async def click_all(self, script: str) -> None:
        """Run a script of clicks, then let the page redraw."""
        done = await self.evaluate(script)
        if done is not True:
            raise RuntimeError(f"the page has changed: {done}")
        await asyncio.sleep(2)

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        path.write_bytes(base64.b64decode(shot["data"]))


#: On the runs table: unfold the sweep's run (its trials are nested under it), close the
#: assistant panel, and choose the columns that make a trial's row a point of the law.
RUNS_TABLE = """(async () => {
  const pause = () => new Promise(r => setTimeout(r, 1500));
  const sweep = [...document.querySelectorAll('[role=gridcell]')]
    .find(c => c.innerText.includes(%(sweep)s));
  if (!sweep || !sweep.querySelector('button')) return 'no sweep row with a fold button';
  sweep.querySelector('button').click();
  const close = [...document.querySelectorAll('button')]
    .find(b => b.getAttribute('aria-label') === 'Close');
  if (close) close.click();
  const columns = [...document.querySelectorAll('button')]
    .find(b => b.innerText.trim() === 'Columns');
  if (!columns) return 'no Columns button';
  columns.click();
  await pause();
  let menu = document.querySelector('input[placeholder="Search columns"]');
  while (menu && !menu.innerText.includes('Reset to defaults')) menu = menu.parentElement;
  if (!menu) return 'no column menu';
  for (const label of %(toggle)s) {
    const item = [...menu.querySelectorAll('*')]
      .find(e => e.children.length === 0 && e.textContent.trim() === label);
    if (!item) return 'no column ' + label;
    item.click();
  }
  document.dispatchEvent(new KeyboardEvent('keydown', {key: 'Escape'}));
  document.body.click();
  await pause();
  // Widen the run name column to its content (ag-grid sizes a column on a double click
  // of its header's resize handle).
  const header = [...document.querySelectorAll('.ag-header-cell')]
    .find(h => h.innerText.trim() === 'Run Name');
  const handle = header && header.querySelector('.ag-header-cell-resize');
  if (handle) handle.dispatchEvent(new MouseEvent('dblclick', {bubbles: true}));
  return true;
})()"""
#: On the sweep run's page: the whole description.
SHOW_DESCRIPTION = """(() => {
  const more = [...document.querySelectorAll('button, a, span')]
    .find(e => e.children.length === 0 && e.textContent.trim() === 'Show more');
  if (more) more.click();
  return true;
})()"""
#: Columns switched: off the empty attributes, on the metrics and parameters of the law.
TOGGLED = ["Dataset", "Source", "Models", "final_loss", "val_loss", "non_embedding_params",
           "flops"]


async def take(devtools: str, pages: list[tuple[str, str, Path, str | None]]) -> None:
    with urllib.request.urlopen(f"{devtools}/json/list") as answer:
        target = next(t for t in json.load(answer) if t["type"] == "page")
    async with aiohttp.ClientSession() as session, session.ws_connect(
            target["webSocketDebuggerUrl"], max_msg_size=0) as ws:
        page = Page(ws)
        await page.call("Page.enable")
        await page.call("Emulation.setDeviceMetricsOverride", width=WINDOW[0],
                        height=WINDOW[1], deviceScaleFactor=1, mobile=False)
        for url, text, path, clicks in pages:
            await page.open(url, text)
            if clicks:
                await page.click_all(clicks)
            await page.screenshot(path)
            print(f"{path}: {path.stat().st_size / 1024:.0f} KiB ({url})")


def find_chromium(given: str | None) -> str:
    for name in ([given] if given else ["chromium", "chromium-browser", "google-chrome"]):
        path = shutil.which(name)
        if path:
            return path
    raise SystemExit("no Chromium found: install it (Debian: apt-get install chromium) or pass "
                     "--chromium PATH")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tracking-uri", default="sqlite:///mlflow.db")
    parser.add_argument("--experiment", default="quickstart")
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    parser.add_argument("--chromium")
    args = parser.parse_args(argv)

    client = MlflowClient(args.tracking_uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        raise SystemExit(f"no experiment {args.experiment!r} in {args.tracking_uri}")
    sweeps = client.search_runs([experiment.experiment_id], "tags.`quokka.role` = 'sweep'",
                                order_by=["attributes.start_time DESC"], max_results=1)
    if not sweeps:
        raise SystemExit(f"experiment {args.experiment!r} has no sweep run")
    sweep = sweeps[0]
    args.out.mkdir(parents=True, exist_ok=True)

    mlflow_port, devtools_port = free_port(), free_port()
    ui = f"http://127.0.0.1:{mlflow_port}"
    started: list[subprocess.Popen] = []
    try:
        started.append(subprocess.Popen(
            [str(Path(sys.executable).with_name("mlflow")), "server", "--backend-store-uri",
             args.tracking_uri, "--host", "127.0.0.1", "--port", str(mlflow_port),
             "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        wait_for(f"{ui}/health", 120, started[-1])
        profile = tempfile.mkdtemp(prefix="quokka-chromium-")
        started.append(subprocess.Popen(
            [find_chromium(args.chromium), "--headless", "--no-sandbox", "--disable-gpu",
             "--hide-scrollbars", f"--remote-debugging-port={devtools_port}",
             f"--user-data-dir={profile}", f"--window-size={WINDOW[0]},{WINDOW[1]}",
             "about:blank"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        devtools = f"http://127.0.0.1:{devtools_port}"
        wait_for(f"{devtools}/json/version", 60, started[-1])
        base = f"{ui}/#/experiments/{experiment.experiment_id}"
        asyncio.run(take(devtools, [
            (f"{base}/runs?workflowType=machine_learning", sweep.info.run_name,
             args.out / "mlflow-runs.png",
             RUNS_TABLE % {"sweep": json.dumps(sweep.info.run_name),
                           "toggle": json.dumps(TOGGLED)}),
            (f"{base}/runs/{sweep.info.run_id}?workflowType=machine_learning", "final loss",
             args.out / "mlflow-sweep-run.png", SHOW_DESCRIPTION),
        ]))
    finally:
        for process in reversed(started):
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
