/**
 * The speaker page: sign in, create a session (or get back to the one still on after a reload or a
 * closed tab), go live from the microphone (16 kHz 16-bit mono PCM in 100 ms chunks, sent with
 * sendAudio), pause, resume, mute, end (after a confirmation), start again; the status, the listener
 * count, the connection and the audio the server confirmed, live.
 */
import {
  type Access,
  LANGUAGES,
  NotFound,
  Pcm16Encoder,
  QUALITY_TIERS,
  type QualityTier,
  type ServerMessage,
  type Session,
  SessionHttpService,
  WebSocketClient,
} from "../src/index.js";
import {
  byId,
  CONNECTION_WORDS,
  describe,
  describeCount,
  focusOn,
  languageName,
  notice,
  openConsole,
  showStatus,
  signInForm,
  text,
} from "./shared.js";

// The session still on, kept across a reload or a closed tab (with the next seq, so audio stays in order).
const ACTIVE = "broadcast-console.speaker";
interface Active {
  username: string;
  sessionId: string;
  nextSeq: number;
}

const { config, auth } = await openConsole();
const http = new SessionHttpService({ baseUrl: config.httpApiUrl, tokenProvider: auth });
let session: Session | undefined;
let live: WebSocketClient | undefined;
let capture: { stop(): void } | undefined;
let paused = false;
let muted = false;
let ended = false;
let pauseKnown = false; // whether the server has told this connection the session's pause state

for (const language of LANGUAGES) byId<HTMLSelectElement>("language").add(new Option(languageName(language), language));
for (const tier of QUALITY_TIERS) byId<HTMLSelectElement>("tier").add(new Option(tier, tier));

signInForm(config, auth, () => {
  byId("sign-in-section").hidden = true;
  text("signed-in-as", auth.username ?? "");
  void comeBack();
});

/** After sign-in: back to this user's session if it is still on, else a new one. */
async function comeBack(): Promise<void> {
  const active = readActive();
  if (active) {
    try {
      const found = await http.getSession(active.sessionId);
      if (found.status !== "ended") {
        showSession(found);
        notice(`Your session ${found.sessionId} is still on: go live to carry on.`);
        focusOn("go-live");
        return;
      }
    } catch (error) {
      if (!(error instanceof NotFound)) notice(`Your last session could not be read: ${describe(error)}`, "error");
    }
    localStorage.removeItem(ACTIVE);
  }
  byId("create-section").hidden = false;
  focusOn("language");
}

function readActive(): Active | undefined {
  try {
    const stored = JSON.parse(localStorage.getItem(ACTIVE) ?? "null") as Active | null;
    return stored && stored.username === auth.username ? stored : undefined;
  } catch {
    return undefined;
  }
}

function saveActive(nextSeq: number): void {
  if (session && auth.username) {
    localStorage.setItem(ACTIVE, JSON.stringify({ username: auth.username, sessionId: session.sessionId, nextSeq }));
  }
}

byId<HTMLFormElement>("create-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const button = byId<HTMLButtonElement>("create");
  button.disabled = true;
  try {
    const created = await http.createSession(byId<HTMLSelectElement>("language").value,
      byId<HTMLSelectElement>("tier").value as QualityTier,
      { access: byId<HTMLSelectElement>("access").value as Access });
    showSession(created);
    saveActive(0);
    notice(`Session ${created.sessionId} created. Share the listener link, then go live.`);
    focusOn("go-live");
  } catch (error) {
    notice(describe(error), "error");
    button.disabled = false;
  }
});

function showSession(shown: Session): void {
  session = shown;
  ended = false;
  paused = shown.status === "paused";
  muted = false;
  byId("create-section").hidden = true;
  byId("session-section").hidden = false;
  byId("new-session").hidden = true;
  text("session-id", shown.sessionId);
  // A link session's key travels in its listener link: an anonymous listener needs it to join.
  const key = shown.joinKey ? `&key=${encodeURIComponent(shown.joinKey)}` : "";
  const link = new URL(`listener.html?session=${encodeURIComponent(shown.sessionId)}${key}`, location.href).toString();
  const anchor = byId<HTMLAnchorElement>("listener-link");
  anchor.href = link;
  anchor.textContent = link;
  text("status", shown.status === "paused" ? "Paused" : "Waiting for the speaker");
  text("listener-count", describeCount({ listenerCount: shown.listenerCount }) ?? "-");
  text("connection", "not connected");
  text("reconnects", 0);
  text("chunks", 0);
  setButtons({ "go-live": true, pause: false, resume: false, mute: false, end: true });
  byId("end-confirm").hidden = true;
}

function setButtons(enabled: Record<string, boolean>): void {
  for (const [id, on] of Object.entries(enabled)) byId<HTMLButtonElement>(id).disabled = !on;
}

byId("copy-link").addEventListener("click", () => {
  void navigator.clipboard?.writeText(byId<HTMLAnchorElement>("listener-link").href).then(
    () => notice("Listener link copied."), () => notice("Copy the link by hand.", "error"));
});

byId("go-live").addEventListener("click", async () => {
  if (!session) return;
  setButtons({ "go-live": false });
  const client = new WebSocketClient({ url: config.webSocketUrl, sessionId: session.sessionId, role: "speaker",
    tokenProvider: auth, firstSeq: readActive()?.sessionId === session.sessionId ? readActive()!.nextSeq : 0,
    // Seconds, not minutes, to notice a half-open link; a confirmation every second of audio.
    heartbeatInterval: 5, ackTimeout: 8, confirmEvery: 10 });
  live = client;
  pauseKnown = false;
  try {
    client.onStateChange((state) => {
      text("connection", CONNECTION_WORDS[state]);
      text("reconnects", Math.max(0, client.connections - 1));
      if (state === "failed") stopped(`The connection was lost: ${describe(client.failure)}`);
      else showLiveNotice();
    });
    client.onConfirmed((count) => text("chunks", count));
    client.onMessage(onServerMessage);
    text("connection", "connecting");
    await client.connect();
    text("connection", CONNECTION_WORDS[client.state]);
    capture = await startCapture((chunk) => {
      if (paused || muted || client.sessionEnded || client.failure) return;
      client.sendAudio(chunk);
      saveActive(client.nextSeq);
    });
    setButtons({ pause: !paused, resume: paused, mute: true });
    showLiveNotice();
    focusOn(paused ? "resume" : "pause");
  } catch (error) {
    client.close();
    capture?.stop();
    notice(`Could not go live: ${describe(error)}`, "error");
    setButtons({ "go-live": true });
    focusOn("go-live");
  }
});

byId("pause").addEventListener("click", () => {
  live?.pause();
  paused = true;
  setButtons({ pause: false, resume: true });
  showLiveNotice();
  focusOn("resume");
});

byId("resume").addEventListener("click", () => {
  live?.resume();
  paused = false;
  setButtons({ pause: true, resume: false });
  showLiveNotice();
  focusOn("pause");
});

byId("mute").addEventListener("click", () => {
  muted = !muted;
  if (muted) live?.mute();
  else live?.unmute();
  const button = byId<HTMLButtonElement>("mute");
  button.textContent = muted ? "Unmute" : "Mute";
  button.setAttribute("aria-pressed", String(muted));
  showLiveNotice();
});

byId("end").addEventListener("click", () => {
  byId("end-confirm").hidden = false;
  focusOn("end-no");
});

byId("end-no").addEventListener("click", () => {
  byId("end-confirm").hidden = true;
  focusOn("end");
});

byId("end-yes").addEventListener("click", async () => {
  if (!session) return;
  byId("end-confirm").hidden = true;
  setButtons({ end: false });
  capture?.stop();
  capture = undefined;
  try {
    // The last chunks are handled before the session ends, so none is refused as SESSION_ENDED.
    if (live?.connected) await live.settle(5);
    await http.deleteSession(session.sessionId);
    text("status", "Ended");
    stopped("The session has ended.");
  } catch (error) {
    notice(`Could not end the session: ${describe(error)}`, "error");
    setButtons({ end: true });
    focusOn("end");
  }
});

byId("new-session").addEventListener("click", () => {
  live?.close();
  live = undefined;
  session = undefined;
  byId("session-section").hidden = true;
  byId("new-session").hidden = true;
  byId("create-section").hidden = false;
  byId<HTMLButtonElement>("create").disabled = false;
  const mute = byId<HTMLButtonElement>("mute");
  mute.textContent = "Mute";
  mute.setAttribute("aria-pressed", "false");
  notice("");
  focusOn("language");
});

for (const event of ["online", "offline"]) window.addEventListener(event, showLiveNotice);

function onServerMessage(message: ServerMessage): void {
  const state = showStatus(message);
  // The first status after going live says whether the session is paused (one resumed after a reload may
  // be). Later ones may predate this page's own pause or resume, still on its way: they never undo it.
  if (!pauseKnown && (state === "paused" || state === "live" || state === "muted")) {
    pauseKnown = true;
    paused = state === "paused";
    if (capture) setButtons({ pause: !paused, resume: paused });
  }
  if (state) showLiveNotice();
  if (message.type === "sessionEnded") {
    stopped("The session has ended.");
  } else if (message.type === "error") {
    notice(`The server refused a message: ${String(message.message ?? message.code)}`, "error");
  }
}

/** The notice tells the state the speaker is in: live, paused, muted, reconnecting or offline. */
function showLiveNotice(): void {
  if (!live || ended || live.failure || !capture) return;
  if (!navigator.onLine) {
    notice("Offline: this device has no network. The audio is kept and sent once the connection is back.", "error");
  } else if (live.state === "reconnecting" || live.state === "connecting") {
    notice("Reconnecting: the connection dropped. The audio is kept and sent once it is back.", "error");
  } else if (paused) {
    notice("Paused: the microphone is not sent. Resume to carry on.");
  } else if (muted) {
    notice("Muted: the session stays live, but listeners hear nothing until you unmute.");
  } else {
    notice("Live: the microphone is streaming.");
  }
}

function stopped(why: string): void {
  const failed = Boolean(live?.failure);
  ended = true;
  capture?.stop();
  capture = undefined;
  setButtons({ "go-live": false, pause: false, resume: false, mute: false, end: false });
  byId<HTMLMeterElement>("level").value = 0;
  notice(why, failed ? "error" : "info");
  if (!failed) localStorage.removeItem(ACTIVE);
  byId("new-session").hidden = false;
  focusOn("new-session");
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
