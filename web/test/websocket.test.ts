import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import {
  BufferFull,
  ConfigurationError,
  ConnectionLost,
  PolicyViolation,
  SpeakerReplaced,
  StreamClosed,
  WebSocketClient,
  type WebSocketClientOptions,
  WebSocketError,
} from "../src/index.js";
import { CountingTokens, FakeWebSocket, jwt, recordingSleep, settle } from "./fakes.js";

const URL_ = "wss://ws.example.com/dev";
const HEARTBEAT = '{"action":"heartbeat"}';

function client(options: Partial<WebSocketClientOptions> = {}, hostUp = true) {
  const { sleeps, sleep } = recordingSleep();
  const tokens = new CountingTokens();
  const probes: string[] = [];
  const live = new WebSocketClient({
    url: URL_, sessionId: "golden-eagle-427", role: "speaker", tokenProvider: tokens,
    WebSocket: FakeWebSocket as unknown as typeof WebSocket, sleep, random: () => 1,
    probe: async (url) => {
      probes.push(url);
      return hostUp;
    },
    ...options,
  });
  return { live, sleeps, tokens, probes };
}

/** Connects, accepting the first handshake. */
async function connected(options: Partial<WebSocketClientOptions> = {}) {
  const made = client(options);
  const connecting = made.live.connect();
  await settle();
  FakeWebSocket.last.accept();
  await connecting;
  return { ...made, ws: FakeWebSocket.last };
}

const audio = (ws: FakeWebSocket) => ws.messages.filter((m) => m.action === "sendAudio").map((m) => m.seq);

beforeEach(() => FakeWebSocket.reset());
afterEach(() => vi.useRealTimers());

describe("connecting", () => {
  it("needs an existing session, a ws:// URL, and a token for a speaker", () => {
    const base = { WebSocket: FakeWebSocket as unknown as typeof WebSocket };
    expect(() => new WebSocketClient({ ...base, url: URL_, sessionId: "" })).toThrow("create the session over HTTP first");
    expect(() => new WebSocketClient({ ...base, url: "https://x", sessionId: "a-b-123" })).toThrow(ConfigurationError);
    expect(() => new WebSocketClient({ ...base, url: URL_, sessionId: "a-b-123", role: "speaker" })).toThrow("tokenProvider");
  });

  it("joins the given session with its role and token, and never creates or ends one", async () => {
    const { live, ws } = await connected({ targetLanguage: "de" });
    expect(ws.url.startsWith(`${URL_}?`)).toBe(true);
    expect(Object.fromEntries(ws.query)).toEqual({ sessionId: "golden-eagle-427", role: "speaker", token: "token-1" });
    live.sendAudio(new Uint8Array([1, 2, 3]));
    live.pause();
    live.resume();
    expect(ws.messages.map((m) => m.action)).toEqual(["sendAudio", "pause", "resume"]);
    expect(live.state).toBe("open");
  });

  it("lets a listener join anonymously, with a target language", async () => {
    const { live, ws } = await connected({ role: "listener", tokenProvider: undefined, targetLanguage: "de" });
    expect(Object.fromEntries(ws.query)).toEqual({ sessionId: "golden-eagle-427", role: "listener", targetLanguage: "de" });
    expect(() => live.sendAudio(new Uint8Array(4))).toThrow("only a speaker");
  });

  it("carries a link session's join key for an anonymous listener", async () => {
    const { ws } = await connected({ role: "listener", tokenProvider: undefined, joinKey: "the-key-0123456789abcdef" });
    expect(Object.fromEntries(ws.query)).toEqual({ sessionId: "golden-eagle-427", role: "listener",
      joinKey: "the-key-0123456789abcdef" });
  });

  it("treats a refused handshake as a policy violation: one token refresh, then no retry", async () => {
    const { live, tokens, sleeps, probes } = client();
    const connecting = live.connect().catch((e) => e);
    await settle();
    FakeWebSocket.last.refuse();
    await settle();
    expect(FakeWebSocket.last.query.get("token")).toBe("token-2"); // the refreshed token, once
    FakeWebSocket.last.refuse();
    const error = await connecting;
    expect(error).toBeInstanceOf(PolicyViolation);
    expect(error.message).toContain("does not exist, has ended or is full");
    expect(FakeWebSocket.instances).toHaveLength(2);
    expect(tokens.refreshes).toBe(1);
    expect(sleeps).toEqual([]);
    expect(probes).toEqual([URL_, URL_]);
    expect(live.state).toBe("failed");
  });

  it("does not retry an anonymous listener's refused join at all", async () => {
    const { live } = client({ role: "listener", tokenProvider: undefined });
    const connecting = live.connect().catch((e) => e);
    await settle();
    FakeWebSocket.last.refuse();
    expect(await connecting).toBeInstanceOf(PolicyViolation);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it("retries with backoff while the host cannot be reached, then gives up", async () => {
    const { live, sleeps } = client({ connectRetries: 2 }, false);
    const connecting = live.connect().catch((e) => e);
    for (let attempt = 0; attempt < 3; attempt++) {
      await settle();
      FakeWebSocket.last.refuse();
    }
    const error = await connecting;
    expect(error).toBeInstanceOf(ConnectionLost);
    expect(FakeWebSocket.instances).toHaveLength(3);
    expect(sleeps).toEqual([1, 2]); // backoff(1), backoff(2): the first attempt was immediate
  });
});

describe("reconnecting", () => {
  it("reconnects to the same session with backoff after a drop, and resends unconfirmed audio in order", async () => {
    const { live, ws, sleeps } = await connected();
    const states: string[] = [];
    live.onStateChange((state) => states.push(state));
    live.sendAudio(new Uint8Array([1]));
    live.sendAudio(new Uint8Array([2]));
    expect(live.settle(60)).toBeInstanceOf(Promise);
    ws.ackHeartbeats(); // seq 0 and 1 confirmed
    await settle();
    live.sendAudio(new Uint8Array([3])); // sent, never confirmed
    ws.drop(1006);
    live.sendAudio(new Uint8Array([4])); // queued while disconnected
    await settle();
    expect(states).toEqual(["reconnecting"]);
    expect(sleeps).toEqual([0.5]);
    const second = FakeWebSocket.last;
    expect(second).not.toBe(ws);
    expect(second.query.get("sessionId")).toBe("golden-eagle-427");
    second.accept();
    await settle();
    expect(audio(ws)).toEqual([0, 1, 2]);
    expect(audio(second)).toEqual([2, 3]); // no gap, no reordering; seq 2 may arrive twice
    expect(live.connections).toBe(2);
    expect(states).toEqual(["reconnecting", "open"]);
  });

  it("confirms audio every confirmEvery messages, so a drop resends only what was not confirmed", async () => {
    const { live, ws } = await connected({ confirmEvery: 3 });
    for (let i = 0; i < 7; i++) live.sendAudio(new Uint8Array([i]));
    expect(ws.sent.map((text) => (text === HEARTBEAT ? "hb" : JSON.parse(text).seq)))
      .toEqual([0, 1, 2, "hb", 3, 4, 5, "hb", 6]);
    ws.ackHeartbeats(); // both answered: seq 0-5 handled
    ws.drop(1006);
    await settle();
    FakeWebSocket.last.accept();
    await settle();
    expect(audio(FakeWebSocket.last)).toEqual([6]);
  });

  it("stops when a reconnection is refused (the session ended meanwhile), after one token refresh", async () => {
    const { live, ws, tokens } = await connected();
    ws.drop(1006);
    await settle();
    FakeWebSocket.last.refuse();
    await settle();
    FakeWebSocket.last.refuse();
    await live.done;
    expect(live.failure).toBeInstanceOf(PolicyViolation);
    expect(FakeWebSocket.instances).toHaveLength(3);
    expect(tokens.refreshes).toBe(1);
  });

  it("ends with ConnectionLost when the network stays down", async () => {
    const made = client({ reconnect: { maxRetries: 2, baseDelay: 0.5, maxDelay: 30, maxRetryAfter: 60 } }, false);
    const connecting = made.live.connect();
    await settle();
    FakeWebSocket.last.accept();
    await connecting;
    FakeWebSocket.last.drop(1006);
    for (let attempt = 0; attempt < 3; attempt++) {
      await settle();
      FakeWebSocket.last.refuse();
    }
    await made.live.done;
    expect(made.live.failure).toBeInstanceOf(ConnectionLost);
    expect(made.sleeps).toEqual([0.5, 1, 2]);
    expect(() => made.live.sendAudio(new Uint8Array(2))).toThrow(ConnectionLost);
  });

  it.each([
    [1008, PolicyViolation],
    [1009, WebSocketError],
    [1003, WebSocketError],
  ])("stops for good on close code %i", async (code, type) => {
    const { live, ws } = await connected();
    ws.drop(code, "nope");
    await settle();
    expect(live.failure).toBeInstanceOf(type);
    expect(live.failure!.message).toContain(`(${code} `);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });

  it("stops when the session ends, and when another connection of the speaker takes over", async () => {
    const first = await connected();
    const messages: unknown[] = [];
    first.live.onMessage((m) => messages.push(m));
    first.ws.receive({ type: "status", status: "paused", listenerCount: 2 });
    first.ws.receive({ type: "sessionEnded", sessionId: "golden-eagle-427" });
    await first.live.done;
    expect(messages).toEqual([{ type: "status", status: "paused", listenerCount: 2 },
      { type: "sessionEnded", sessionId: "golden-eagle-427" }]);
    expect(first.live.state).toBe("ended");
    expect(first.ws.closedWith).toBe(1000);
    expect(() => first.live.sendAudio(new Uint8Array(2))).toThrow(StreamClosed);

    FakeWebSocket.reset();
    const second = await connected();
    second.ws.receive({ type: "error", code: "SPEAKER_REPLACED", message: "replaced" });
    await second.live.done;
    expect(second.live.failure).toBeInstanceOf(SpeakerReplaced);
    expect(FakeWebSocket.instances).toHaveLength(1);
  });
});

describe("keeping the connection", () => {
  beforeEach(() => vi.useFakeTimers({ toFake: ["setTimeout", "clearTimeout", "setInterval", "clearInterval", "Date"] }));

  it("sends a heartbeat before the 10-minute idle timeout", async () => {
    // Answers come up to 10 s late here: within the ackTimeout.
    const { live, ws } = await connected({ heartbeatInterval: 30, ackTimeout: 15 });
    vi.advanceTimersByTime(29_000);
    expect(ws.sent).toEqual([]);
    vi.advanceTimersByTime(1_000);
    expect(ws.sent).toEqual([HEARTBEAT]);
    const ack = setInterval(() => ws.ackHeartbeats(), 10_000);
    vi.advanceTimersByTime(9 * 60_000);
    clearInterval(ack);
    expect(ws.sent).toEqual(Array(19).fill(HEARTBEAT)); // one every 30 s, the same connection
    expect(live.connections).toBe(1);
    expect(live.lastServerTime).toBe(1);
  });

  it("replaces a connection after two heartbeats with nothing heard back", async () => {
    const { live, ws } = await connected({ heartbeatInterval: 30 });
    vi.advanceTimersByTime(30_000 * 3);
    await settle();
    expect(ws.closedWith).toBe(1000);
    expect(live.state).toBe("reconnecting");
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("notices a half-open link within ackTimeout: a heartbeat left unanswered replaces the connection", async () => {
    const { live, ws } = await connected({ heartbeatInterval: 5, ackTimeout: 4 });
    vi.advanceTimersByTime(5_000);
    expect(ws.sent).toEqual([HEARTBEAT]);
    ws.receive({ type: "status", status: "active" }); // something else heard is not the answer
    vi.advanceTimersByTime(3_999);
    expect(live.state).toBe("open");
    vi.advanceTimersByTime(1);
    await settle();
    expect(ws.closedWith).toBe(1000);
    expect(live.state).toBe("reconnecting");
    expect(FakeWebSocket.instances).toHaveLength(2);
  });

  it("keeps a connection whose heartbeats are answered in time, and measures the round trip", async () => {
    const { live, ws } = await connected({ heartbeatInterval: 5, ackTimeout: 4 });
    const now = Date.now();
    vi.advanceTimersByTime(5_000);
    vi.advanceTimersByTime(40);
    ws.receive({ type: "heartbeatAck", serverTime: now + 5_000 + 20 + 700 }); // the server's clock is 700 ms ahead
    expect(live.roundTrip).toBe(40);
    expect(live.clockOffset).toBe(700);
    const ack = setInterval(() => ws.ackHeartbeats(), 1_000);
    vi.advanceTimersByTime(60_000);
    clearInterval(ack);
    expect(live.state).toBe("open");
    expect(live.connections).toBe(1);
  });

  it("counts the audio the server confirmed, not what was queued", async () => {
    const { live, ws } = await connected({ confirmEvery: 3 });
    const told: number[] = [];
    live.onConfirmed((count) => told.push(count));
    for (let i = 0; i < 4; i++) live.sendAudio(new Uint8Array([i]));
    live.pause();
    expect(live.confirmedChunks).toBe(0);
    ws.ackHeartbeats(); // the heartbeat after the third chunk
    expect(live.confirmedChunks).toBe(3);
    void live.settle(5);
    ws.ackHeartbeats();
    expect(live.confirmedChunks).toBe(4); // the pause is not audio
    expect(told).toEqual([3, 4]);
  });

  it("sends mute and unmute for a speaker, switchLanguage for a listener", async () => {
    const speaker = await connected();
    speaker.live.mute();
    speaker.live.unmute();
    expect(speaker.ws.messages).toEqual([{ action: "mute" }, { action: "unmute" }]);
    expect(() => speaker.live.switchLanguage("de")).toThrow("only a listener");
    const listener = await connected({ role: "listener", tokenProvider: undefined });
    listener.live.switchLanguage("de");
    expect(listener.ws.messages).toEqual([{ action: "switchLanguage", targetLanguage: "de" }]);
    expect(() => listener.live.mute()).toThrow("only a speaker");
  });

  it("replaces the connection before the 2-hour limit without losing or repeating audio", async () => {
    // The first token expires within the 2 hours: the new connection gets a fresh one.
    const expiries = [Date.now() / 1000 + 3600, Date.now() / 1000 + 4 * 3600];
    const { live, ws, tokens } = await connected({ heartbeatInterval: 30,
      tokenProvider: new CountingTokens((n) => jwt(expiries[n - 1]!, `t${n}`)) });
    expect(ws.query.get("token")).toBe(jwt(expiries[0]!, "t1"));
    const ack = setInterval(() => FakeWebSocket.last.ackHeartbeats(), 10_000);
    for (let i = 0; i < 3; i++) live.sendAudio(new Uint8Array([i]));
    vi.advanceTimersByTime(115 * 60_000 - 1);
    expect(FakeWebSocket.instances).toHaveLength(1);
    vi.advanceTimersByTime(1);
    live.sendAudio(new Uint8Array([9])); // while being replaced: waits in the outbox
    ws.ackHeartbeats(); // the server confirms what was sent
    await settle();
    expect(ws.closedWith).toBe(1000);
    const next = FakeWebSocket.last;
    expect(next).not.toBe(ws);
    expect(next.query.get("token")).toBe(jwt(expiries[1]!, "t2"));
    next.accept();
    await settle();
    expect(audio(ws)).toEqual([0, 1, 2]);
    expect(audio(next)).toEqual([3]);
    clearInterval(ack);
  });

  it("settle() resolves once the server answered everything sent before it", async () => {
    const { live, ws } = await connected();
    live.sendAudio(new Uint8Array([1]));
    const settled = live.settle(5);
    expect(ws.sent.at(-1)).toBe(HEARTBEAT);
    ws.ackHeartbeats();
    await expect(settled).resolves.toBe(true);
    const unanswered = live.settle(5);
    vi.advanceTimersByTime(5_000);
    await expect(unanswered).resolves.toBe(false);
  });
});

describe("the outbox", () => {
  it("numbers chunks in order and waits while disconnected", async () => {
    const { live } = client({ firstSeq: 10 });
    const connecting = live.connect();
    await settle();
    expect(() => live.sendAudio(new Uint8Array(2))).not.toThrow(); // queued before the socket opens
    FakeWebSocket.last.accept();
    await connecting;
    expect(live.sendAudio(new Uint8Array(2))).toEqual([11]);
    expect(audio(FakeWebSocket.last)).toEqual([10, 11]);
    expect(FakeWebSocket.last.messages[0]).toEqual({ action: "sendAudio", seq: 10, data: "AAA=" });
  });

  it("splits a chunk whose message would not fit in one 32 KB frame", async () => {
    const { live, ws } = await connected();
    const big = new Uint8Array(60_000).map((_, i) => i % 251);
    const seqs = live.sendAudio(big);
    expect(seqs).toEqual([0, 1, 2]);
    expect(ws.sent.every((text) => text.length <= 32 * 1024)).toBe(true);
    const joined = ws.messages.map((m) => atob(m.data as string)).join("");
    expect(Uint8Array.from(joined, (c) => c.charCodeAt(0))).toEqual(big);
  });

  it("refuses audio beyond the buffer instead of dropping it silently", async () => {
    const { live, ws } = await connected({ maxBufferedBytes: 200 });
    ws.drop(1006);
    live.sendAudio(new Uint8Array(60));
    expect(() => live.sendAudio(new Uint8Array(60))).toThrow(BufferFull);
    expect(live.nextSeq).toBe(1);
  });
});
