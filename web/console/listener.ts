/**
 * The listener page: join a session by its ID (from the speaker's link), anonymously where the stack
 * allows it; the status and the listener count live; "ended" when the session ends.
 *
 * A refused join is a failed WebSocket handshake, which carries no reason a browser can read. A
 * signed-in listener is told which one it was (the session is read over HTTP, which needs a token);
 * an anonymous one gets the possible reasons (a missing key among them: the service answers all alike).
 */
import {
  NotFound,
  PolicyViolation,
  type ServerMessage,
  SessionHttpService,
  ValidationFailed,
  WebSocketClient,
} from "../src/index.js";
import {
  byId,
  CONNECTION_WORDS,
  describe,
  notice,
  openConsole,
  SESSION_ID,
  showStatus,
  signInForm,
  text,
} from "./shared.js";

const { config, auth } = await openConsole();
let live: WebSocketClient | undefined;

signInForm(config, auth, () => {
  text("sign-in-summary", `Signed in as ${auth.username}`);
  byId<HTMLDetailsElement>("sign-in-details").open = false;
});

const fromLink = new URLSearchParams(location.search).get("session");
// The link's key (a link session's): used for the session the link names, not for an ID typed in later.
const keyFromLink = new URLSearchParams(location.search).get("key") ?? undefined;
if (fromLink) byId<HTMLInputElement>("session-input").value = fromLink;

byId<HTMLFormElement>("join-form").addEventListener("submit", (event) => {
  event.preventDefault();
  void join(byId<HTMLInputElement>("session-input").value.trim());
});
byId("leave").addEventListener("click", () => {
  live?.close();
  notice("You left the session.");
});

if (fromLink && config.allowAnonymousListeners) void join(fromLink);
else if (!config.allowAnonymousListeners) notice("This stack admits signed-in listeners only: sign in, then join.");

async function join(sessionId: string): Promise<void> {
  if (!SESSION_ID.test(sessionId)) {
    notice(`"${sessionId}" is not a session ID; they look like golden-eagle-427.`, "error");
    return;
  }
  if (!config.allowAnonymousListeners && !auth.signedIn) {
    notice("This stack admits signed-in listeners only: sign in, then join.", "error");
    return;
  }
  live?.close();
  const client = new WebSocketClient({ url: config.webSocketUrl, sessionId, role: "listener",
    tokenProvider: auth.signedIn ? auth : undefined, joinKey: sessionId === fromLink ? keyFromLink : undefined });
  live = client;
  byId("live-section").hidden = false;
  text("session-id", sessionId);
  text("status", "-");
  text("listener-count", "-");
  byId<HTMLButtonElement>("join").disabled = true;
  client.onStateChange((state) => {
    text("connection", CONNECTION_WORDS[state]);
    text("reconnects", Math.max(0, client.connections - 1));
    if (["ended", "closed", "failed"].includes(state)) {
      byId<HTMLButtonElement>("join").disabled = false;
      byId<HTMLButtonElement>("leave").disabled = true;
    }
    if (state === "failed" && client.failure && !(client.failure instanceof PolicyViolation)) {
      notice(`The connection was lost: ${describe(client.failure)}`, "error");
    }
  });
  client.onMessage((message: ServerMessage) => {
    showStatus(message);
    if (message.type === "sessionEnded") notice("The session has ended.");
  });
  text("connection", "connecting");
  try {
    await client.connect();
    text("connection", CONNECTION_WORDS[client.state]);
    byId<HTMLButtonElement>("leave").disabled = false;
    notice(`Listening to ${sessionId}.`);
  } catch (error) {
    byId<HTMLButtonElement>("join").disabled = false;
    notice(error instanceof PolicyViolation ? await whyRefused(sessionId) : `Could not join: ${describe(error)}`,
      "error");
  }
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
