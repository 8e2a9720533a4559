/**
 * The listener page: join a session by its ID (from the speaker's link), anonymously where the stack
 * allows it, in a chosen language; hear its audio (PcmPlayer), see its live state, its listeners and the
 * latency; told when no audio arrives for the chosen language.
 *
 * A refused join is a failed WebSocket handshake, which carries no reason a browser can read. A
 * signed-in listener is told which one it was (the session is read over HTTP, which needs a token);
 * an anonymous one gets the possible reasons (a missing key among them: the service answers all alike).
 */
import {
  LANGUAGES,
  type LiveState,
  NotFound,
  PcmPlayer,
  PolicyViolation,
  readSessionId,
  type ServerMessage,
  SessionHttpService,
  ValidationFailed,
  WebSocketClient,
} from "../src/index.js";
import {
  announce,
  byId,
  CONNECTION_WORDS,
  describe,
  focusOn,
  languageName,
  notice,
  openConsole,
  showStatus,
  signInForm,
  text,
} from "./shared.js";

// Live, and nothing heard for this long in the chosen language: no audio exists for it (yet).
const NO_AUDIO_AFTER_MS = 4000;
const ORIGINAL = "";

const { config, auth } = await openConsole();
let live: WebSocketClient | undefined;
let audio: { context: AudioContext; player: PcmPlayer } | undefined;
let state: LiveState | undefined;
let liveSince = 0; // when the current state became "live", or the language changed
let noAudioShown = false;
const latencies: number[] = [];
const params = new URLSearchParams(location.search);

const picker = byId<HTMLSelectElement>("language");
picker.add(new Option("The speaker's own (original)", ORIGINAL));
for (const code of LANGUAGES) picker.add(new Option(languageName(code), code));
picker.value = LANGUAGES.includes(params.get("lang") as never) ? params.get("lang")! : ORIGINAL;

signInForm(config, auth, () => {
  text("sign-in-summary", `Signed in as ${auth.username}`);
  byId<HTMLDetailsElement>("sign-in-details").open = false;
  focusOn(live ? "leave" : "session-input");
});

const fromLink = params.get("session");
// The link's key (a link session's): used for the session the link names, not for an ID typed in later.
const keyFromLink = params.get("key") ?? undefined;
if (fromLink) byId<HTMLInputElement>("session-input").value = fromLink;

byId<HTMLFormElement>("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void join(byId<HTMLInputElement>("session-input").value);
});
byId("leave").addEventListener("click", () => {
  leave();
  notice("You left the session.");
  focusOn("session-input");
});
byId("start-audio").addEventListener("click", async () => {
  await audio?.context.resume();
  byId("start-audio").hidden = true;
  focusOn("leave");
});
picker.addEventListener("change", () => {
  if (!live || live.state === "ended" || live.state === "failed" || live.state === "closed") return;
  // A named language is a switch on the same connection; the original needs the connect query without one.
  if (picker.value === ORIGINAL) {
    void join(live.sessionId);
    return;
  }
  live.switchLanguage(picker.value);
  heardFrom(picker.value);
});

if (fromLink && config.allowAnonymousListeners) void join(fromLink);
else if (!config.allowAnonymousListeners) notice("This stack admits signed-in listeners only: sign in, then join.");

setInterval(watchAudio, 500);

async function join(typed: string): Promise<void> {
  const input = byId<HTMLInputElement>("session-input");
  const reading = readSessionId(typed);
  if (reading.problem !== undefined) {
    input.setAttribute("aria-invalid", "true");
    notice(reading.problem, "error");
    focusOn("session-input");
    return;
  }
  const sessionId = reading.sessionId;
  input.value = sessionId;
  input.removeAttribute("aria-invalid");
  if (!config.allowAnonymousListeners && !auth.signedIn) {
    notice("This stack admits signed-in listeners only: sign in, then join.", "error");
    return;
  }
  leave();
  const targetLanguage = picker.value === ORIGINAL ? undefined : picker.value;
  const client = new WebSocketClient({ url: config.webSocketUrl, sessionId, role: "listener", targetLanguage,
    tokenProvider: auth.signedIn ? auth : undefined, joinKey: sessionId === fromLink ? keyFromLink : undefined,
    // A half-open link is noticed within seconds; a listener sends nothing else to tell.
    heartbeatInterval: 10, ackTimeout: 5 });
  live = client;
  const context = new AudioContext();
  audio = { context, player: new PcmPlayer(context) };
  byId("live-section").hidden = false;
  text("session-id", sessionId);
  heardFrom(targetLanguage);
  byId<HTMLButtonElement>("join").disabled = true;
  client.onStateChange((connection) => {
    if (live !== client) return;
    text("connection", CONNECTION_WORDS[connection]);
    text("reconnects", Math.max(0, client.connections - 1));
    if (["ended", "closed", "failed"].includes(connection)) {
      byId<HTMLButtonElement>("join").disabled = false;
      byId<HTMLButtonElement>("leave").disabled = true;
    }
    if (connection === "failed" && client.failure && !(client.failure instanceof PolicyViolation)) {
      notice(`The connection was lost: ${describe(client.failure)}`, "error");
    }
  });
  client.onMessage((message) => {
    if (live === client) received(message);
  });
  text("connection", "connecting");
  try {
    await client.connect();
    if (live !== client) return;
    text("connection", CONNECTION_WORDS[client.state]);
    byId<HTMLButtonElement>("leave").disabled = false;
    if (!state) notice(`Listening to ${sessionId}.`);
    if (context.state === "suspended") {
      // The browser allows sound only after a click here (the page was opened from a link).
      byId("start-audio").hidden = false;
      focusOn("start-audio");
    } else {
      focusOn("leave");
    }
    void client.settle(5); // a heartbeat now: the clock offset the latency needs
  } catch (error) {
    if (live !== client) return;
    leave();
    byId<HTMLButtonElement>("join").disabled = false;
    notice(error instanceof PolicyViolation ? await whyRefused(sessionId) : `Could not join: ${describe(error)}`,
      "error");
    focusOn("session-input");
  }
}

function received(message: ServerMessage): void {
  if (message.type === "audio") {
    const played = audio?.player.play(message, live?.clockOffset);
    if (played?.latency !== undefined) {
      latencies.push(played.latency);
      if (latencies.length > 20) latencies.shift();
      text("latency", `${median(latencies)} ms`);
    }
    if (noAudioShown) {
      noAudioShown = false;
      notice(`Listening to ${live?.sessionId}.`);
    }
    return;
  }
  if (message.type === "languageSwitched" && typeof message.targetLanguage === "string") {
    heardFrom(message.targetLanguage);
    return;
  }
  const next = showStatus(message);
  if (!next || next === state) return;
  state = next;
  if (next === "live") liveSince = Date.now();
  const says: Partial<Record<LiveState, string>> = {
    waiting: "Waiting for the speaker: the session has not started yet.",
    "speaker-disconnected": "The speaker disconnected. Stay here: the audio comes back when they reconnect.",
    paused: "The speaker paused the broadcast.",
    muted: "The speaker muted the microphone.",
    ended: "The session has ended.",
    live: `Listening to ${live?.sessionId}.`,
  };
  noAudioShown = false;
  notice(says[next]!);
  if (next === "ended") {
    audio?.player.reset();
    text("latency", "-");
    focusOn("session-input");
  }
}

/** Live, yet nothing heard in the chosen language for a while: say so, honestly. */
function watchAudio(): void {
  if (!live || state !== "live" || noAudioShown || !audio) return;
  const since = Math.max(liveSince, audio.player.lastArrival ?? 0);
  if (Date.now() - since < NO_AUDIO_AFTER_MS) return;
  noAudioShown = true;
  text("latency", "-");
  const language = picker.value !== ORIGINAL ? languageName(picker.value) : "the speaker's own language";
  notice(`No audio is arriving in ${language}: the speaker is live, but this session may not be translated ` +
    "into it. Choose another language, or the original.", "error");
}

function heardFrom(language: string | undefined): void {
  text("hearing", language ? languageName(language) : "The speaker's own language");
  audio?.player.reset();
  latencies.length = 0;
  text("latency", "-");
  liveSince = Date.now();
  if (noAudioShown) {
    noAudioShown = false;
    notice(`Listening to ${live?.sessionId}.`);
  }
  announce(`Now hearing ${language ? languageName(language) : "the original"}.`);
}

/** Closes the connection and the audio, and clears every fact: nothing stale stays on the page. */
function leave(): void {
  const client = live;
  live = undefined;
  client?.close();
  void audio?.context.close();
  audio = undefined;
  state = undefined;
  noAudioShown = false;
  latencies.length = 0;
  for (const id of ["status", "listener-count", "hearing", "latency"]) text(id, "-");
  text("connection", "not connected");
  text("reconnects", 0);
  text("session-id", "");
  byId("start-audio").hidden = true;
  byId("live-section").hidden = true;
  byId<HTMLButtonElement>("join").disabled = false;
  byId<HTMLButtonElement>("leave").disabled = true;
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

async function whyRefused(sessionId: string): Promise<string> {
  if (!auth.signedIn) {
    return `Session ${sessionId} refused the join: it does not exist, has ended, or is full, or it needs ` +
      "its speaker's listener link (with its key). Sign in to find out which.";
  }
  const http = new SessionHttpService({ baseUrl: config.httpApiUrl, tokenProvider: auth, maxQueued: 0,
    connectivity: null });
  try {
    const session = await http.getSession(sessionId);
    if (session.status === "ended") return `Session ${sessionId} has ended.`;
    return `Session ${sessionId} is full: it has ${session.listenerCount} listeners, the most it admits.`;
  } catch (error) {
    if (error instanceof NotFound) return `There is no session ${sessionId}: check the ID (sessions expire).`;
    if (error instanceof ValidationFailed) return `"${sessionId}" is not a session ID.`;
    return `Session ${sessionId} refused the join, and its state could not be read: ${describe(error)}`;
  } finally {
    http.close();
  }
}
