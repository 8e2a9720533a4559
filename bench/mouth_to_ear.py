"""Mouth to ear: from the speaker's microphone to the listener's loudspeaker, through the console pages in
headless Chromium (the machine's; CHROMIUM_PATH names another), the local stack between them.

The fake microphone plays a burst every two seconds, each of its own pitch (tests/support/mouth_to_ear.py), so
a burst heard is paired with the one spoken even when the delay exceeds the time between bursts. The speaker page
(signed in, a public session, live) and the listener page (joined by the ID, the original language) run in
one browser, so both taps read one clock: each burst's onset as the speaker page captures it, and as the
listener page's Web Audio output plays it. That delay is the figure, over SECONDS of bursts after WARMUP.

Baseline, same run, same browser: the round trip of a raw WebSocket message from a page to a bare echo
server on this machine (bench.websocket's), i.e. what any browser audio path over a WebSocket pays at least
twice (speaker -> server, server -> listener) before any service work, buffering or playback.

Below the row: the listener page's own latency figure (the server's receive time of each chunk -> heard,
via the heartbeat's clock offset; what the page shows), sampled once a second; then the delay stage by stage:
the speaker page's send -> the service's receive time -> the listener page's arrival (one machine, one clock),
the jitter buffer (how far ahead of the audio clock each chunk is scheduled) and the output latency. Before the
send: the onset waits for the end of its 100 ms chunk (50 ms on average).
"""

from __future__ import annotations

import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.mouth_to_ear import LISTENER_TAP, SPEAKER_TAP, chromium_args, find_chromium, pair, write_bursts

from .stats import row, summary
from .support import ROOT, revision_tree
from .websocket import echo_server

SECONDS = 90
WARMUP = 3  # bursts thrown away (workers warm, the jitter buffer settled)
ECHOES = 100
GOAL_MS = 300.0

# In the page: ECHOES sequential round trips of a 3,200-byte-ish text message (a chunk's size in base64).
_ECHO = """async ([url, count]) => {
  const ws = new WebSocket(url);
  await new Promise((resolve, reject) => { ws.onopen = resolve; ws.onerror = reject; });
  const payload = "x".repeat(4300);
  const samples = [];
  for (let i = 0; i < count; i++) {
    const start = performance.now();
    await new Promise((resolve) => { ws.onmessage = resolve; ws.send(payload); });
    samples.push(performance.now() - start);
  }
  ws.close();
  return samples;
}"""


def _sign_in_and_go_live(page, info: dict) -> str:
    user = info["users"][0]
    page.goto(info["consoleUrl"] + "speaker.html")
    page.fill("#username", user["username"])
    page.fill("#password", user["password"])
    page.click("#sign-in")
    page.wait_for_selector("#create-section", state="visible")
    page.select_option("#access", "public")
    page.click("#create")
    page.wait_for_selector("#session-section", state="visible")
    session_id = page.inner_text("#session-id")
    page.click("#go-live")
    page.wait_for_function("document.getElementById('connection').textContent === 'connected'", timeout=60_000)
    return session_id


def _measure(info: dict, chromium: str, wav: Path, echo_url: str) -> dict:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=chromium_args(wav))
        try:
            speaker_context, listener_context = browser.new_context(), browser.new_context()
            speaker_context.add_init_script(SPEAKER_TAP)
            listener_context.add_init_script(LISTENER_TAP)
            speaker, listener = speaker_context.new_page(), listener_context.new_page()
            session_id = _sign_in_and_go_live(speaker, info)
            page_latencies: list[float] = []
            listener.goto(f"{info['consoleUrl']}listener.html?session={session_id}")
            listener.wait_for_function("document.getElementById('status').textContent === 'Live'", timeout=60_000)
            deadline = time.monotonic() + SECONDS + WARMUP
            while time.monotonic() < deadline:
                time.sleep(1)
                shown = listener.inner_text("#latency")
                if shown.endswith(" ms"):
                    page_latencies.append(float(shown.removesuffix(" ms")))
            mouth = speaker.evaluate("window.__mouth")
            ear = listener.evaluate("window.__ear")
            ahead = listener.evaluate("window.__ahead")
            output = listener.evaluate("window.__output")
            gaps = listener.evaluate("window.__gaps")
            sent = speaker.evaluate("window.__sent")
            arrivals = listener.evaluate("window.__arrivals")
            delays = pair(mouth, ear)[WARMUP:]
            echo = listener.evaluate(_ECHO, [echo_url, ECHOES])
            speaker.click("#end")
            speaker.click("#end-yes")
            speaker.wait_for_function("document.getElementById('status').textContent === 'Ended'", timeout=60_000)
            return {"delays": delays, "mouth": len(mouth), "ear": len(ear), "echo": echo,
                    "page": page_latencies[WARMUP:], "ahead": ahead[len(ahead) // 10:], "output": output,
                    "stages": _stages(sent, arrivals[len(arrivals) // 10:]), "gaps": gaps,
                    "seconds": SECONDS + WARMUP}
        finally:
            browser.close()


def _stages(sent: dict, arrivals: list[dict]) -> dict[str, list[float]]:
    """Per chunk, on the one clock of this machine: page sent -> the service received it (the gateway, its queue,
    the invocation), and received -> the listener page has it (sendAudio's writes, the stream, the fan-out)."""
    inbound, outbound = [], []
    for arrival in arrivals:
        left = sent.get(str(arrival["seq"]))
        if left is not None and isinstance(arrival["received"], int | float):
            inbound.append(arrival["received"] - left)
            outbound.append(arrival["at"] - arrival["received"])
    if not inbound:
        raise RuntimeError(f"no chunk followed from the speaker page to the listener page ({len(sent)} sent, "
                           f"{len(arrivals)} arrived)")
    return {"inbound": inbound, "outbound": outbound}


def prepare_before(revision: str, tree: Path) -> None:
    """For --before: the revision's console (its web/, built with this checkout's npm packages), which its stack
    serves."""
    web = revision_tree(revision, tree / "web-archive", ("web",)).joinpath("web").rename(tree / "web")
    (web / "node_modules").symlink_to(ROOT / "web" / "node_modules")
    subprocess.run(["npm", "run", "build"], cwd=web, check=True, capture_output=True)


def run(info: dict) -> list[dict]:
    chromium = find_chromium()
    if chromium is None:
        raise RuntimeError("no Chromium found: install one (Debian: apt-get install -y chromium) or set CHROMIUM_PATH")
    with tempfile.TemporaryDirectory() as folder, echo_server() as echo_url:
        wav = Path(folder) / "bursts.wav"
        write_bursts(wav)
        result = _measure(info, chromium, wav, echo_url)
    delays = summary(result["delays"])
    missing = result["mouth"] - WARMUP - len(result["delays"])
    name = "mouth -> ear, speaker page -> listener page (Web Audio output), vs raw WebSocket round trip in the page"
    if missing > 2:
        name += f" [{result['mouth']} bursts captured, {len(result['delays'])} matched after the warm-up]"
    return [
        # Each burst's delay in order, in the JSON: a queue that grows over the run shows as a rising series.
        row(name, delays, summary(result["echo"]), goal=f"p95 <= {GOAL_MS:g} ms",
            met=delays["n"] > 0 and delays["p95"] <= GOAL_MS) | {"delays_ms": [round(d) for d in result["delays"]]},
        row("↳ the listener page's own figure: server receive -> heard (sampled once a second)",
            summary(result["page"])),
        # Where the time goes, stage by stage (after the first tenth), on this machine's one clock.
        row("↳ stage: the speaker page sends a chunk -> the service receives it (gateway, its queue, invocation)",
            summary(result["stages"]["inbound"])),
        row("↳ stage: the service receives it -> the listener page has it (sendAudio, stream, fan-out, gateway)",
            summary(result["stages"]["outbound"])),
        row("↳ stage: the jitter buffer, each chunk scheduled this far ahead of the audio clock",
            summary(result["ahead"])),
        row("↳ stage: the output latency the listener page's audio context reports", summary(result["output"])),
        # The price of a short jitter buffer: how often playback ran dry (a gap of silence), and for how long.
        row(f"↳ gaps in playback (the buffer ran dry), each one's length; n = gaps in "
            f"{result['seconds']:.0f} s of listening", summary(result["gaps"])),
    ]
