"""Mouth to ear in one headless Chromium: a fake microphone plays tone bursts with known onsets, the speaker
page's captured samples and the listener page's played ones are tapped, and each burst's onset is found on
both sides. Both pages' times are `performance.timeOrigin + performance.now()`: one clock in one browser.

- Mouth: when a burst's first loud sample reaches the speaker page (the AudioWorklet's batch arriving on the
  main thread, less the samples after it in the batch). Chromium's own capture buffering before that is not
  counted (a few ms).
- Ear: when the listener page's Web Audio output plays that burst's first loud sample: the time its buffer
  is scheduled for (`start(when)`, mapped to the page clock with `getOutputTimestamp()`), plus the sample's
  place in the buffer, plus the context's reported output latency.
"""

from __future__ import annotations

import math
import os
import shutil
import struct
import wave
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Each burst has its own pitch, so a burst heard is paired with the burst spoken even when the delay is longer
# than the time between bursts (a loaded machine): pairs are unambiguous up to a whole loop of the file.
TONES_HZ = (440.0, 554.0, 659.0, 784.0, 880.0)
WAV_RATE = 48_000
BURST_S = 0.5  # tone, then silence: an onset every PERIOD_S
# Not a multiple of the 100 ms chunk: each onset falls at another point of its chunk (30 ms on from the one
# before), so the wait for the chunk's end is sampled over the whole chunk rather than fixed at one phase.
PERIOD_S = 2.03
LOOP_S = PERIOD_S * len(TONES_HZ)  # the file's length: Chromium loops it
PITCH_S = 0.1  # an onset's pitch: zero crossings over this much after it
LOUD = 0.05  # |sample| above this is tone (silence is exact zeros; the tone's amplitude is 0.5)
QUIET_S = 0.2  # an onset is a loud sample after at least this much quiet

CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--use-fake-device-for-media-stream", "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
]


def write_bursts(path: Path) -> None:
    """A mono 16-bit WAV at 48 kHz (the console resamples it): BURST_S of each of TONES_HZ in turn, every PERIOD_S,
    silence between. Chromium's fake capture device loops the file."""
    frames = bytearray()
    for n in range(round(WAV_RATE * LOOP_S)):
        t = n / WAV_RATE
        loud = (t % PERIOD_S) < BURST_S
        hz = TONES_HZ[min(int(t // PERIOD_S), len(TONES_HZ) - 1)]
        frames += struct.pack("<h", round(0.5 * 32767 * math.sin(2 * math.pi * hz * (t % PERIOD_S))) if loud else 0)
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(WAV_RATE)
        wav.writeframes(bytes(frames))


def find_chromium() -> str | None:
    """The machine's Chromium, or the one CHROMIUM_PATH names (Playwright downloads none here)."""
    configured = os.environ.get("CHROMIUM_PATH")
    if configured:
        return configured if os.access(configured, os.X_OK) else None
    return next((path for path in map(shutil.which, BROWSERS) if path), None)


def chromium_args(wav: Path) -> list[str]:
    return [*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={wav}"]


# Onset detection shared by both taps: a loud sample after QUIET_S of quiet, {t: ms, hz: its pitch over PITCH_S}.
# `state` carries the quiet run and the pitch being counted across buffers (they are contiguous on each side).
_ONSETS = f"""
const LOUD = {LOUD}, QUIET_S = {QUIET_S}, PITCH_S = {PITCH_S};
function findOnsets(state, samples, rate, startMs, out) {{
  for (let i = 0; i < samples.length; i++) {{
    const x = samples[i];
    const pending = state.pending;
    if (pending) {{
      if (state.prev !== undefined && (x < 0) !== (state.prev < 0)) pending.crossings += 1;
      pending.n += 1;
      if (pending.n >= PITCH_S * rate) {{
        pending.entry.hz = pending.crossings / 2 / (pending.n / rate);
        state.pending = null;
      }}
    }}
    state.prev = x;
    if (Math.abs(x) > LOUD) {{
      if (state.quiet >= QUIET_S * rate) {{
        const entry = {{ t: startMs + (i / rate) * 1000, hz: null }};
        out.push(entry);
        state.pending = {{ entry, crossings: 0, n: 0 }};
      }}
      state.quiet = 0;
    }} else {{
      state.quiet += 1;
    }}
  }}
}}
function clockNow() {{ return performance.timeOrigin + performance.now(); }}
"""

# Speaker page: every batch the capture worklet posts, as it reaches the page.
SPEAKER_TAP = _ONSETS + """
window.__mouth = [];
(() => {
  const Original = window.AudioWorkletNode;
  if (!Original) return;
  const state = { quiet: Infinity };
  window.AudioWorkletNode = class extends Original {
    constructor(...args) {
      super(...args);
      const rate = this.context.sampleRate;
      this.port.addEventListener("message", (event) => {
        const samples = event.data;
        if (!(samples instanceof Float32Array)) return;
        const startMs = clockNow() - (samples.length / rate) * 1000;
        findOnsets(state, samples, rate, startMs, window.__mouth);
      });
    }
  };
})();
// When each audio chunk leaves the page, by its seq (the listener's message carries it as sequenceNumber).
window.__sent = {};
(() => {
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    if (typeof data === "string" && data.startsWith('{"action":"sendAudio"')) {
      window.__sent[JSON.parse(data).seq] = clockNow();
    }
    return send.call(this, data);
  };
})();
"""

# Listener page: every buffer the page schedules for playback, at the time it will be heard; plus the
# pitch of each 100 ms of it that is all tone (zero crossings), to tell the tones from anything else; and how
# far ahead of the clock each buffer is scheduled (the jitter buffer's share of the delay, ms).
LISTENER_TAP = _ONSETS + """
window.__ear = [];
window.__earPitches = [];
window.__ahead = [];
window.__output = [];
window.__gaps = [];
// Each audio message as it reaches the page: its sequenceNumber, the service's receive time, when it came.
window.__arrivals = [];
(() => {
  const Original = window.WebSocket;
  window.WebSocket = class extends Original {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (typeof event.data !== "string" || !event.data.includes('"audioData"')) return;
        const message = JSON.parse(event.data);
        if (message.type === "audio") window.__arrivals.push({ seq: message.sequenceNumber, received: message.timestamp, at: clockNow() });
      });
    }
  };
})();
(() => {
  const start = AudioBufferSourceNode.prototype.start;
  const state = { quiet: Infinity };
  AudioBufferSourceNode.prototype.start = function (when = 0, ...rest) {
    const context = this.context;
    const stamp = context.getOutputTimestamp ? context.getOutputTimestamp() : {};
    const at = stamp.performanceTime !== undefined && stamp.performanceTime > 0
      ? performance.timeOrigin + stamp.performanceTime + (Math.max(when, stamp.contextTime) - stamp.contextTime) * 1000
      : clockNow() + Math.max(0, when - context.currentTime) * 1000;
    const heard = at + (context.outputLatency || context.baseLatency || 0) * 1000;
    window.__ahead.push(Math.max(0, when - context.currentTime) * 1000);
    // A gap: this buffer starts after the one before it ended (the jitter buffer ran dry), in ms.
    if (window.__playedUntil !== undefined && when > window.__playedUntil + 0.001) {
      window.__gaps.push((when - window.__playedUntil) * 1000);
    }
    window.__playedUntil = Math.max(when, context.currentTime) + this.buffer.duration;
    window.__output.push((context.outputLatency || context.baseLatency || 0) * 1000);
    const samples = this.buffer.getChannelData(0);
    const rate = this.buffer.sampleRate;
    findOnsets(state, samples, rate, heard, window.__ear);
    // Per 100 ms window (a message may carry several chunks, tone and silence): the windows that are all tone.
    const size = Math.round(rate * PITCH_S);
    for (let start = 0; start + size <= samples.length; start += size) {
      let loud = true, crossings = 0;
      for (let i = start; i < start + size; i++) {
        if (Math.abs(samples[i]) <= LOUD && Math.abs(samples[i - 1] ?? 1) <= LOUD && Math.abs(samples[i + 1] ?? 1) <= LOUD) loud = false;
        if (i > start && (samples[i] < 0) !== (samples[i - 1] < 0)) crossings += 1;
      }
      if (loud) window.__earPitches.push(crossings / 2 / PITCH_S);
    }
    return start.call(this, when, ...rest);
  };
})();
"""


def tone_of(hz: float | None) -> float | None:
    """Which of TONES_HZ a measured pitch is (within 4 %), or None."""
    return next((tone for tone in TONES_HZ if hz is not None and abs(hz - tone) < tone * 0.04), None)


def pair(mouth: list[dict], ear: list[dict], window_ms: float = LOOP_S * 1000 * 0.9) -> list[float]:
    """Mouth-to-ear delays (ms): each ear onset against the latest mouth onset of the same pitch before it, within
    one loop of the file. Onsets whose pitch is none of the tones (a chunk dropped at a burst's start) are left out."""
    delays = []
    for heard in ear:
        tone = tone_of(heard["hz"])
        before = [spoken["t"] for spoken in mouth if spoken["t"] < heard["t"] and tone_of(spoken["hz"]) == tone]
        if tone is not None and before and heard["t"] - before[-1] < window_ms:
            delays.append(heard["t"] - before[-1])
    return delays
