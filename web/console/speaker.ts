/**
 * The speaker page: sign in, create a session, go live from the microphone (16 kHz 16-bit mono PCM in
 * 100 ms chunks, sent with sendAudio), pause, resume, end; the status, the listener count and the
 * connection live.
 */
import {
  type Access,
  LANGUAGES,
  Pcm16Encoder,
  QUALITY_TIERS,
  type QualityTier,
  type ServerMessage,
  type Session,
  SessionHttpService,
  WebSocketClient,
} from "../src/index.js";
import { byId, CONNECTION_WORDS, describe, notice, openConsole, showStatus, signInForm, text } from "./shared.js";

const { config, auth } = await openConsole();
const http = new SessionHttpService({ baseUrl: config.httpApiUrl, tokenProvider: auth });
let session: Session | undefined;
let live: WebSocketClient | undefined;
let capture: { stop(): void } | undefined;
let paused = false;
let chunks = 0;

for (const language of LANGUAGES) byId<HTMLSelectElement>("language").add(new Option(language, language));
for (const tier of QUALITY_TIERS) byId<HTMLSelectElement>("tier").add(new Option(tier, tier));

signInForm(config, auth, () => {
  byId("sign-in-section").hidden = true;
  byId("create-section").hidden = false;
  text("signed-in-as", auth.username ?? "");
});

byId<HTMLFormElement>("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = byId<HTMLButtonElement>("create");
  button.disabled = true;
  try {
    session = await http.createSession(byId<HTMLSelectElement>("language").value,
      byId<HTMLSelectElement>("tier").value as QualityTier,
      { access: byId<HTMLSelectElement>("access").value as Access });
    showSession(session);
    notice(`Session ${session.sessionId} created. Share the listener link, then go live.`);
  } catch (error) {
    notice(describe(error), "error");
    button.disabled = false;
  }
});

function showSession(created: Session): void {
  byId("create-section").hidden = true;
  byId("session-section").hidden = false;
  text("session-id", created.sessionId);
  // A link session's key travels in its listener link: an anonymous listener needs it to join.
  const key = created.joinKey ? `&key=${encodeURIComponent(created.joinKey)}` : "";
  const link = new URL(`listener.html?session=${encodeURIComponent(created.sessionId)}${key}`, location.href).toString();
  const anchor = byId<HTMLAnchorElement>("listener-link");
  anchor.href = link;
  anchor.textContent = link;
  text("status", created.status);
  text("listener-count", created.listenerCount);
}

byId("copy-link").addEventListener("click", () => {
  void navigator.clipboard?.writeText(byId<HTMLAnchorElement>("listener-link").href).then(
    () => notice("Listener link copied."), () => notice("Copy the link by hand.", "error"));
});

byId("go-live").addEventListener("click", async () => {
  if (!session) return;
  const button = byId<HTMLButtonElement>("go-live");
  button.disabled = true;
  try {
    live = new WebSocketClient({ url: config.webSocketUrl, sessionId: session.sessionId, role: "speaker",
      tokenProvider: auth });
    live.onStateChange((state) => {
      text("connection", CONNECTION_WORDS[state]);
      text("reconnects", Math.max(0, (live?.connections ?? 1) - 1));
      if (state === "failed") stopped(describe(live?.failure));
    });
    live.onMessage(onServerMessage);
    text("connection", "connecting");
    await live.connect();
    text("connection", CONNECTION_WORDS[live.state]);
    capture = await startCapture((chunk) => {
      if (paused || !live || live.sessionEnded) return;
      live.sendAudio(chunk);
      text("chunks", ++chunks);
    });
    byId<HTMLButtonElement>("pause").disabled = false;
    notice("Live: the microphone is streaming.");
  } catch (error) {
    live?.close();
    notice(`Could not go live: ${describe(error)}`, "error");
    button.disabled = false;
  }
});

byId("pause").addEventListener("click", () => {
  live?.pause();
  paused = true;
  byId<HTMLButtonElement>("pause").disabled = true;
  byId<HTMLButtonElement>("resume").disabled = false;
});

byId("resume").addEventListener("click", () => {
  live?.resume();
  paused = false;
  byId<HTMLButtonElement>("pause").disabled = false;
  byId<HTMLButtonElement>("resume").disabled = true;
});

byId("end").addEventListener("click", async () => {
  if (!session) return;
  byId<HTMLButtonElement>("end").disabled = true;
  capture?.stop();
  try {
    // The last chunks are handled before the session ends, so none is refused as SESSION_ENDED.
    if (live?.connected) await live.settle(5);
    await http.deleteSession(session.sessionId);
    text("status", "ended");
    stopped("The session has ended.");
  } catch (error) {
    notice(`Could not end the session: ${describe(error)}`, "error");
    byId<HTMLButtonElement>("end").disabled = false;
  }
});

function onServerMessage(message: ServerMessage): void {
  showStatus(message);
  if (message.type === "sessionEnded") {
    stopped("The session has ended.");
  } else if (message.type === "error") {
    notice(`The server refused a message: ${String(message.message ?? message.code)}`, "error");
  }
}

function stopped(why: string): void {
  capture?.stop();
  capture = undefined;
  for (const id of ["go-live", "pause", "resume", "end"]) byId<HTMLButtonElement>(id).disabled = true;
  byId<HTMLMeterElement>("level").value = 0;
  notice(why, live?.failure ? "error" : "info");
}

/** Microphone → AudioWorklet → 16 kHz PCM chunks; the meter follows the input level. */
async function startCapture(onChunk: (chunk: Uint8Array) => void): Promise<{ stop(): void }> {
  const stream = await navigator.mediaDevices.getUserMedia({
    // Speech goes to transcription: the raw signal, not one processed for a call.
    audio: { channelCount: 1, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
  });
  const context = new AudioContext();
  await context.audioWorklet.addModule(new URL("pcm-capture.js", location.href));
  const source = context.createMediaStreamSource(stream);
  const node = new AudioWorkletNode(context, "pcm-capture", {
    numberOfInputs: 1, numberOfOutputs: 0, channelCount: 1, channelCountMode: "explicit",
  });
  const encoder = new Pcm16Encoder(context.sampleRate, onChunk);
  const meter = byId<HTMLMeterElement>("level");
  node.port.onmessage = (event: MessageEvent<Float32Array>) => {
    encoder.push(event.data);
    meter.value = Math.min(1, Pcm16Encoder.level(event.data) * Math.SQRT2); // RMS of a sine × √2 = its peak
  };
  source.connect(node);
  return {
    stop() {
      node.port.onmessage = null;
      source.disconnect();
      for (const track of stream.getTracks()) track.stop();
      void context.close();
    },
  };
}
