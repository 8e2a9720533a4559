/**
 * The live connection of a speaker or a listener to one existing session (API Gateway WebSocket API).
 * It never creates or ends sessions. Same rules as the Python client's ws_client.py, in a browser:
 *
 * Connection life
 *  - A refused handshake is a policy violation and is never retried. A browser cannot read the
 *    handshake's status (the socket just closes, code 1006, before `open`), so when that happens the
 *    client asks whether the host answers at all (a `no-cors` request to its root): if it does, the
 *    handshake was refused (401/403: missing, ended, full or foreign session, or a bad token) and
 *    PolicyViolation is thrown, after one token refresh and one more try when a token was sent, since
 *    an expired token is the usual cause on a reconnection; if it does not, the network is down and
 *    the attempt is retried with backoff.
 *  - A close with code 1008 is a PolicyViolation; 1003, 1007 and 1009 are fatal WebSocketErrors.
 *  - Any other drop reconnects with the same sessionId, with full-jitter backoff, up to
 *    `reconnect.maxRetries` times (then ConnectionLost).
 *  - `sessionEnded` stops the client (the message is delivered first). SPEAKER_REPLACED stops it with
 *    SpeakerReplaced (reconnecting would take the session back from the newer connection).
 *  - A heartbeat every `heartbeatInterval` keeps the 10-minute idle timeout away; two heartbeats in a
 *    row with nothing heard back mean the connection is dead, and it is replaced. So does any heartbeat
 *    left unanswered for `ackTimeout` seconds: a half-open link (the network went away without a close)
 *    is noticed within seconds, not after TCP gives up.
 *  - Each answered heartbeat measures the round trip (`roundTrip`) and the server clock's offset from
 *    this one (`clockOffset`, from the fastest round trip: exact to half of it).
 *  - API Gateway closes every socket after 2 hours, so the connection is replaced after
 *    `maxConnectionAge` (1 h 55 min): sending stops, the server confirms what was sent (a heartbeat
 *    queued behind it is answered), the socket closes and a new one opens with a fresh token.
 *
 * Audio delivery (the server does not acknowledge audio)
 *  - sendAudio() numbers chunks with an increasing `seq` and appends them to an ordered outbox, sent in
 *    order whenever a connection is open; the caller never waits for the network.
 *  - A sent message stays "unconfirmed" until a heartbeat sent after it is answered (answers come in
 *    order, so the server has handled everything before); a heartbeat follows every `confirmEvery`
 *    messages (50: 5 s of 100 ms chunks). `confirmedChunks` counts the audio messages confirmed so far
 *    (`onConfirmed` tells of each change): what the server has, not what was queued. When a connection drops, its unconfirmed messages go back to
 *    the front of the outbox and are sent again on the next connection, same seq: no gap and no
 *    reordering; a repeat may arrive (same seq, for the pipeline to drop).
 *  - While disconnected, audio waits in the outbox (up to `maxBufferedBytes`; beyond that sendAudio
 *    throws BufferFull rather than drop audio silently).
 *  - API Gateway limits a frame to 32 KB and a browser cannot fragment messages, so a chunk whose
 *    message would exceed `maxMessageBytes` (32 KB) is split into consecutive pieces, each with its own seq.
 */
import {
  BroadcastClientError,
  BufferFull,
  ConfigurationError,
  ConnectionLost,
  NetworkUnavailable,
  PolicyViolation,
  SpeakerReplaced,
  StreamClosed,
  WebSocketError,
} from "./errors.js";
import type { Role } from "./models.js";
import { backoff, type RetryPolicy, sleep as realSleep } from "./retry.js";
import { DEFAULT_REFRESH_MARGIN, TokenManager, type TokenProvider } from "./tokens.js";

export const MAX_FRAME_BYTES = 32 * 1024;
export const DEFAULT_HEARTBEAT_INTERVAL = 30;
export const DEFAULT_MAX_CONNECTION_AGE = 115 * 60;
export const DEFAULT_RECONNECT: RetryPolicy = { maxRetries: 10, baseDelay: 0.5, maxDelay: 30, maxRetryAfter: 60 };
export const UNANSWERED_HEARTBEATS_LIMIT = 2;
export const DEFAULT_ACK_TIMEOUT = 10;
export const FATAL_CLOSE_CODES: Record<number, string> = {
  1003: "unsupported data", 1007: "invalid message", 1008: "policy violation", 1009: "message too big",
};
const HEARTBEAT = JSON.stringify({ action: "heartbeat" });
// {"action":"sendAudio","seq":<up to 20 digits>,"data":"<base64>"}
const AUDIO_OVERHEAD = '{"action":"sendAudio","seq":,"data":""}'.length + 20;

export type ServerMessage = Record<string, unknown> & { type?: string };
export type ConnectionState = "connecting" | "open" | "reconnecting" | "ended" | "closed" | "failed";

export interface WebSocketClientOptions {
  /** WebSocketUrl, e.g. wss://def.execute-api.eu-west-1.amazonaws.com/dev */
  url: string;
  /** An existing session (create it over HTTP first). */
  sessionId: string;
  role?: Role;
  /** Required for a speaker; a listener without one joins anonymously. */
  tokenProvider?: TokenProvider;
  targetLanguage?: string;
  /** A link session's key (Session.joinKey, or the listener link's `key`): an anonymous listener needs it. */
  joinKey?: string;
  /** Seconds. */
  heartbeatInterval?: number;
  /** Seconds a heartbeat may wait for its answer before the connection is taken for dead and replaced. */
  ackTimeout?: number;
  maxConnectionAge?: number;
  openTimeout?: number;
  reconnect?: RetryPolicy;
  /** Retries of the first connection (network failures only). */
  connectRetries?: number;
  maxBufferedBytes?: number;
  maxMessageBytes?: number;
  /** Messages sent between two heartbeats that confirm them: what a drop may send twice. */
  confirmEvery?: number;
  firstSeq?: number;
  refreshMargin?: number;
  WebSocket?: typeof WebSocket;
  /** Whether the WebSocket host answers plain HTTP at all; tells a refused handshake from a network failure. */
  probe?: (url: string) => Promise<boolean>;
  now?: () => number;
  sleep?: (seconds: number) => Promise<void>;
  random?: () => number;
}

interface Frame {
  text: string;
  serial: number; // set when sent
  acked?: () => void; // a settle() waiting for this heartbeat's answer
  audio?: boolean;
}

type Listener<T> = (value: T) => void;

/** Internal: this connection attempt failed in a way worth retrying. */
class Transient extends Error {}

const REFUSED = (id: string) =>
  `The live connection to session ${id} was refused: the session does not exist, has ended or is full, ` +
  "it belongs to another speaker, or the token was not accepted.";

/** A request to the WebSocket host's root over HTTP: any answer means the host is up. */
export async function probeHost(url: string): Promise<boolean> {
  const root = new URL("/", url.replace(/^ws/, "http"));
  try {
    await fetch(root, { mode: "no-cors", cache: "no-store", signal: AbortSignal.timeout(5000) });
    return true;
  } catch {
    return false;
  }
}

export function base64Encode(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) {
    binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  }
  return btoa(binary);
}

export class WebSocketClient {
  readonly url: string;
  readonly sessionId: string;
  readonly role: Role;
  readonly targetLanguage: string | undefined;
  readonly joinKey: string | undefined;
  /** Connections opened so far (1 + reconnections). */
  connections = 0;
  state: ConnectionState = "connecting";
  /** Why the client stopped, when it failed. */
  failure: BroadcastClientError | undefined;
  /** serverTime (ms) of the last heartbeatAck. */
  lastServerTime: number | undefined;
  /** Milliseconds between the last answered heartbeat and its answer. */
  roundTrip: number | undefined;
  /** The server's clock minus this one (ms), from the fastest round trip so far. */
  clockOffset: number | undefined;
  /** Audio messages the server has confirmed (handled), across connections. */
  confirmedChunks = 0;

  private readonly tokens: TokenManager | undefined;
  private readonly options: Required<Pick<WebSocketClientOptions, "heartbeatInterval" | "ackTimeout" | "maxConnectionAge" |
    "openTimeout" | "reconnect" | "connectRetries" | "maxBufferedBytes" | "confirmEvery">>;
  private readonly maxPiece: number;
  private readonly WS: typeof WebSocket;
  private readonly probe: (url: string) => Promise<boolean>;
  private readonly sleep: (seconds: number) => Promise<void>;
  private readonly random: () => number;
  private readonly now: () => number;
  private fastestRoundTrip = Infinity;
  private nextSeqValue: number;
  private readonly outbox: Frame[] = [];
  private unconfirmed: Frame[] = [];
  private pendingHeartbeats: { serial: number; sentAt: number; timer: ReturnType<typeof setTimeout> }[] = [];
  private serial = 0;
  private sinceHeartbeat = 0; // messages sent since the last heartbeat
  private bufferedBytes = 0;
  private ws: WebSocket | undefined;
  private heard = false;
  private timers: ReturnType<typeof setTimeout>[] = [];
  private rotating = false;
  private started = false;
  private finished = false;
  private ended = false;
  private readonly listeners = { message: new Set<Listener<ServerMessage>>(), state: new Set<Listener<ConnectionState>>(),
    confirmed: new Set<Listener<number>>() };
  private stopped!: () => void;
  /** Settles when the client stops: session ended, closed, or failed (see `failure`). */
  readonly done: Promise<void> = new Promise((resolve) => (this.stopped = resolve));

  constructor(options: WebSocketClientOptions) {
    if (!/^wss?:\/\//.test(options.url ?? "")) {
      throw new ConfigurationError("The WebSocket URL must start with ws:// or wss://; it is the stack output " +
        "WebSocketUrl.");
    }
    if (!options.sessionId) throw new TypeError("sessionId is required: create the session over HTTP first");
    const role = options.role ?? "listener";
    if (role !== "speaker" && role !== "listener") throw new TypeError("role must be 'speaker' or 'listener'");
    if (role === "speaker" && !options.tokenProvider) throw new TypeError("a speaker needs a tokenProvider");
    const maxMessage = options.maxMessageBytes ?? MAX_FRAME_BYTES;
    if (maxMessage <= AUDIO_OVERHEAD + 4) throw new RangeError("maxMessageBytes is too small for any audio");
    this.url = options.url;
    this.sessionId = options.sessionId;
    this.role = role;
    this.targetLanguage = options.targetLanguage;
    this.joinKey = options.joinKey;
    this.tokens = options.tokenProvider
      ? new TokenManager(options.tokenProvider, options.now ?? Date.now, options.refreshMargin ?? DEFAULT_REFRESH_MARGIN)
      : undefined;
    this.options = {
      heartbeatInterval: options.heartbeatInterval ?? DEFAULT_HEARTBEAT_INTERVAL,
      ackTimeout: options.ackTimeout ?? DEFAULT_ACK_TIMEOUT,
      maxConnectionAge: options.maxConnectionAge ?? DEFAULT_MAX_CONNECTION_AGE,
      openTimeout: options.openTimeout ?? 10,
      reconnect: options.reconnect ?? DEFAULT_RECONNECT,
      connectRetries: options.connectRetries ?? 2,
      maxBufferedBytes: options.maxBufferedBytes ?? 32 * 1024 * 1024,
      confirmEvery: options.confirmEvery ?? 50,
    };
    this.maxPiece = Math.floor((maxMessage - AUDIO_OVERHEAD) / 4) * 3;
    this.WS = options.WebSocket ?? globalThis.WebSocket;
    this.probe = options.probe ?? probeHost;
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
    this.now = options.now ?? Date.now;
    this.nextSeqValue = options.firstSeq ?? 0;
  }

  // ---------------------------------------------------------------- public

  get nextSeq(): number {
    return this.nextSeqValue;
  }

  /** Messages waiting to be sent or confirmed (audio, pause, resume). */
  get buffered(): number {
    return this.outbox.length + this.unconfirmed.length;
  }

  get connected(): boolean {
    return this.state === "open";
  }

  get sessionEnded(): boolean {
    return this.ended;
  }

  /** Status, error and other server messages (heartbeatAck excepted), in arrival order. */
  onMessage(listener: Listener<ServerMessage>): () => void {
    this.listeners.message.add(listener);
    return () => this.listeners.message.delete(listener);
  }

  onStateChange(listener: Listener<ConnectionState>): () => void {
    this.listeners.state.add(listener);
    return () => this.listeners.state.delete(listener);
  }

  /** Called with `confirmedChunks` whenever the server confirms more audio. */
  onConfirmed(listener: Listener<number>): () => void {
    this.listeners.confirmed.add(listener);
    return () => this.listeners.confirmed.delete(listener);
  }

  /** Opens the first connection; throws PolicyViolation, ConnectionLost or AuthenticationFailed. */
  async connect(): Promise<void> {
    if (this.started) throw new Error("connect() can be called once");
    this.started = true;
    try {
      const ws = await this.openWithRetry(this.options.connectRetries, true);
      this.serve(ws);
    } catch (error) {
      this.fail(error);
      throw error;
    }
  }

  /** Queues a chunk (split if its message would exceed maxMessageBytes) and returns its seq numbers. */
  sendAudio(chunk: Uint8Array): number[] {
    this.checkCanSend(true);
    const first = this.nextSeqValue;
    const frames: Frame[] = [];
    for (let offset = 0; offset < chunk.length; offset += this.maxPiece) {
      const piece = chunk.subarray(offset, offset + this.maxPiece);
      const seq = first + frames.length;
      frames.push({ text: JSON.stringify({ action: "sendAudio", seq, data: base64Encode(piece) }), serial: 0,
        audio: true });
    }
    const size = frames.reduce((sum, frame) => sum + frame.text.length, 0);
    if (this.bufferedBytes + size > this.options.maxBufferedBytes) {
      throw new BufferFull(`${this.bufferedBytes} bytes of audio are already waiting for the connection; the chunk ` +
        "was not queued.");
    }
    this.nextSeqValue += frames.length;
    this.enqueue(frames);
    return frames.map((_, n) => first + n);
  }

  /** Asks the server to pause the session; ordered after the audio already queued. */
  pause(): void {
    this.control("pause");
  }

  resume(): void {
    this.control("resume");
  }

  /** Asks the server to mute the session: audio sent while muted is dropped, not kept. */
  mute(): void {
    this.control("mute");
  }

  unmute(): void {
    this.control("unmute");
  }

  /** A speaker's control message, in the outbox after the audio queued before it. */
  private control(action: "pause" | "resume" | "mute" | "unmute"): void {
    this.checkCanSend(true);
    this.enqueue([{ text: JSON.stringify({ action }), serial: 0 }]);
  }

  /** A listener's move to another language (the server answers `languageSwitched`). */
  switchLanguage(targetLanguage: string): void {
    if (this.role !== "listener") throw new Error("only a listener switches language");
    this.checkCanSend(false);
    this.enqueue([{ text: JSON.stringify({ action: "switchLanguage", targetLanguage }), serial: 0 }]);
  }

  /**
   * Waits until the server has handled everything sent so far (a heartbeat queued behind it is
   * answered). Call it before ending a session, so its last chunks are not refused as SESSION_ENDED.
   * Resolves false if no answer came within `timeout` seconds.
   */
  settle(timeout = 10): Promise<boolean> {
    this.checkCanSend(false);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(false), timeout * 1000);
      this.enqueue([{ text: HEARTBEAT, serial: 0, acked: () => {
        clearTimeout(timer);
        resolve(true);
      } }]);
    });
  }

  /** Replaces the connection now, as done before the 2-hour limit; queued audio waits meanwhile. */
  async reconnect(): Promise<void> {
    this.checkCanSend(false);
    const target = this.connections + 1;
    await this.rotate();
    while (this.connections < target && !this.finished) await this.nextState();
    if (this.failure) throw this.failure;
  }

  /** Closes the connection (code 1000). Messages still queued are dropped; settle() first. */
  close(): void {
    if (this.finished) return;
    const ws = this.ws;
    this.detach();
    ws?.close(1000);
    this.finish("closed");
  }

  // -------------------------------------------------------------- outbox

  private checkCanSend(speakerOnly: boolean): void {
    if (speakerOnly && this.role !== "speaker") throw new Error("only a speaker connection sends audio, pause and resume");
    if (!this.started) throw new Error("call connect() first");
    if (this.failure) throw this.failure;
    if (this.ended) throw new StreamClosed(`Session ${this.sessionId} has ended.`);
    if (this.finished) throw new StreamClosed("The live connection is closed.");
  }

  private enqueue(frames: Frame[]): void {
    this.outbox.push(...frames);
    this.bufferedBytes += frames.reduce((sum, frame) => sum + frame.text.length, 0);
    this.pump();
  }

  /** Sends the outbox in order while the connection is open and not being replaced. */
  private pump(): void {
    const ws = this.ws;
    while (ws && ws.readyState === this.WS.OPEN && !this.rotating && this.outbox.length) {
      const frame = this.outbox.shift()!;
      frame.serial = ++this.serial;
      if (frame.text === HEARTBEAT) {
        this.awaitAnswer(ws, frame.serial);
        this.sinceHeartbeat = 0;
      }
      ws.send(frame.text);
      this.unconfirmed.push(frame);
      if (frame.text !== HEARTBEAT && ++this.sinceHeartbeat >= this.options.confirmEvery) this.sendHeartbeat(ws);
    }
  }

  /** A heartbeat outside the outbox: its answer confirms everything sent before it (and calls `acked`). */
  private sendHeartbeat(ws: WebSocket, acked?: () => void): void {
    const serial = ++this.serial;
    this.awaitAnswer(ws, serial);
    this.sinceHeartbeat = 0;
    if (acked) {
      // Waited on: kept with the unconfirmed frames, whose confirmation calls back.
      this.bufferedBytes += HEARTBEAT.length;
      this.unconfirmed.push({ text: HEARTBEAT, serial, acked });
    }
    ws.send(HEARTBEAT);
  }

  /** A heartbeat's answer is due within ackTimeout; without one the link is taken for dead. */
  private awaitAnswer(ws: WebSocket, serial: number): void {
    const timer = setTimeout(() => this.abandon(ws, "heartbeat unanswered"), this.options.ackTimeout * 1000);
    this.pendingHeartbeats.push({ serial, sentAt: this.now(), timer });
  }

  private answered(serverTime: unknown): void {
    const heartbeat = this.pendingHeartbeats.shift();
    this.lastServerTime = typeof serverTime === "number" ? serverTime : undefined;
    if (!heartbeat) return;
    clearTimeout(heartbeat.timer);
    const now = this.now();
    this.roundTrip = now - heartbeat.sentAt;
    if (this.lastServerTime !== undefined && this.roundTrip <= this.fastestRoundTrip) {
      this.fastestRoundTrip = this.roundTrip;
      this.clockOffset = this.lastServerTime - (heartbeat.sentAt + now) / 2;
    }
    this.confirm(heartbeat.serial);
  }

  private confirm(upTo: number): void {
    const still: Frame[] = [];
    let audio = 0;
    for (const frame of this.unconfirmed) {
      if (frame.serial <= upTo) {
        this.bufferedBytes -= frame.text.length;
        if (frame.audio) audio += 1;
        frame.acked?.();
      } else {
        still.push(frame);
      }
    }
    this.unconfirmed = still;
    if (audio) {
      this.confirmedChunks += audio;
      for (const listener of [...this.listeners.confirmed]) listener(this.confirmedChunks);
    }
  }

  // ---------------------------------------------------------- connection

  private setState(state: ConnectionState): void {
    if (this.state === state) return;
    this.state = state;
    for (const listener of [...this.listeners.state]) listener(state);
  }

  private nextState(): Promise<void> {
    return new Promise((resolve) => {
      const off = this.onStateChange(() => {
        off();
        resolve();
      });
    });
  }

  private serve(ws: WebSocket): void {
    this.ws = ws;
    this.connections += 1;
    this.heard = false;
    this.rotating = false;
    this.pendingHeartbeats = [];
    this.sinceHeartbeat = 0;
    ws.onmessage = (event) => this.received(ws, event.data);
    ws.onclose = (event) => this.dropped(ws, event.code, event.reason);
    ws.onerror = null;
    this.startTimers(ws);
    this.setState("open");
    this.pump();
  }

  private startTimers(ws: WebSocket): void {
    let sent = false;
    let unanswered = 0;
    const heartbeat = setInterval(() => {
      if (this.ws !== ws) return;
      unanswered = sent && !this.heard ? unanswered + 1 : 0;
      if (unanswered >= UNANSWERED_HEARTBEATS_LIMIT) {
        this.abandon(ws, "heartbeats unanswered");
        return;
      }
      this.heard = false;
      this.sendHeartbeat(ws);
      sent = true;
    }, this.options.heartbeatInterval * 1000);
    const age = setTimeout(() => void this.rotate(), this.options.maxConnectionAge * 1000);
    this.timers.push(heartbeat, age);
  }

  private stopTimers(): void {
    for (const timer of this.timers) clearTimeout(timer);
    for (const heartbeat of this.pendingHeartbeats) clearTimeout(heartbeat.timer);
    this.timers = [];
  }

  private received(ws: WebSocket, raw: unknown): void {
    if (this.ws !== ws) return;
    this.heard = true;
    let message: ServerMessage;
    try {
      message = JSON.parse(String(raw));
    } catch {
      return;
    }
    if (typeof message !== "object" || message === null || Array.isArray(message)) return;
    if (message.type === "heartbeatAck") {
      this.answered(message.serverTime);
      return;
    }
    for (const listener of [...this.listeners.message]) listener(message);
    if (message.type === "sessionEnded") {
      this.ended = true;
      this.detach();
      ws.close(1000);
      this.finish("ended");
    } else if (message.type === "error" && message.code === "SPEAKER_REPLACED") {
      this.detach();
      ws.close(1000);
      this.fail(new SpeakerReplaced(`Another connection of this speaker took over session ${this.sessionId}; ` +
        "this one stopped."));
    }
  }

  /** The connection closed by itself (or was abandoned): stop, or reconnect. */
  private dropped(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws || this.finished) return;
    this.detach();
    if (code in FATAL_CLOSE_CODES) {
      const text = `The server closed the live connection to session ${this.sessionId} (${code} ` +
        `${FATAL_CLOSE_CODES[code]}${reason ? `: ${reason}` : ""}).`;
      this.fail(code === 1008 ? new PolicyViolation(text, code) : new WebSocketError(text));
      return;
    }
    void this.reopen(false);
  }

  private abandon(ws: WebSocket, why: string): void {
    if (this.ws !== ws) return;
    this.detach();
    ws.close(1000, why);
    void this.reopen(false);
  }

  /** Forgets the current socket; its unconfirmed messages go back to the front of the outbox. */
  private detach(): void {
    const ws = this.ws;
    this.stopTimers();
    this.ws = undefined;
    if (ws) {
      ws.onmessage = ws.onclose = ws.onerror = null;
    }
    this.outbox.unshift(...this.unconfirmed);
    this.unconfirmed = [];
    this.pendingHeartbeats = [];
  }

  private async rotate(): Promise<void> {
    const ws = this.ws;
    if (!ws || this.rotating || this.finished) return;
    this.rotating = true; // new messages wait in the outbox
    if (this.unconfirmed.length) {
      // Everything sent is confirmed before the socket goes, so nothing is sent twice.
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.options.openTimeout * 1000);
        this.sendHeartbeat(ws, () => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (this.ws !== ws) return; // dropped meanwhile: already reconnecting
    this.detach();
    ws.close(1000);
    await this.reopen(true);
  }

  private async reopen(immediate: boolean): Promise<void> {
    if (this.finished) return;
    this.setState("reconnecting");
    try {
      const ws = await this.openWithRetry(this.options.reconnect.maxRetries, immediate);
      if (this.finished) {
        ws.close(1000);
        return;
      }
      this.serve(ws);
    } catch (error) {
      this.fail(error);
    }
  }

  private finish(state: ConnectionState): void {
    if (this.finished) return;
    this.finished = true;
    this.stopTimers();
    this.setState(state);
    this.stopped();
  }

  private fail(error: unknown): void {
    if (this.finished) return;
    this.failure = error instanceof BroadcastClientError ? error
      : new WebSocketError(`The live connection stopped unexpectedly: ${String(error)}`);
    this.finish("failed");
  }

  private async openWithRetry(retries: number, immediate: boolean): Promise<WebSocket> {
    let failures = 0;
    for (;;) {
      if (failures || !immediate) await this.sleep(backoff(this.options.reconnect, failures, this.random));
      if (this.finished) throw new StreamClosed("The live connection is closed.");
      try {
        return await this.open();
      } catch (error) {
        if (!(error instanceof Transient)) throw error;
        failures += 1;
        if (failures > retries) {
          throw new ConnectionLost(`Cannot connect to the live session ${this.sessionId} (${failures} attempt(s)): ` +
            `${error.message}`);
        }
      }
    }
  }

  private async open(): Promise<WebSocket> {
    let refreshed = false;
    for (;;) {
      let token: string | undefined;
      if (this.tokens) {
        try {
          token = await this.tokens.get();
        } catch (error) {
          if (error instanceof NetworkUnavailable) throw new Transient(error.message);
          throw error;
        }
      }
      const outcome = await this.handshake(this.urlFor(token));
      if (outcome instanceof this.WS) return outcome;
      if (outcome === "timeout") throw new Transient("the handshake did not finish in time");
      // Closed before open: refused, or no network. Only a probe of the host can tell.
      if (!(await this.probe(this.url))) throw new Transient("the WebSocket host cannot be reached");
      if (token && !refreshed && this.tokens) {
        refreshed = true;
        try {
          if ((await this.tokens.rejected(token)) !== undefined) continue;
        } catch (error) {
          if (error instanceof NetworkUnavailable) throw new Transient(error.message);
          throw error;
        }
      }
      throw new PolicyViolation(REFUSED(this.sessionId));
    }
  }

  private handshake(url: string): Promise<WebSocket | "refused" | "timeout"> {
    return new Promise((resolve) => {
      const ws = new this.WS(url);
      const timer = setTimeout(() => {
        ws.onopen = ws.onclose = ws.onerror = null;
        ws.close();
        resolve("timeout");
      }, this.options.openTimeout * 1000);
      ws.onopen = () => {
        clearTimeout(timer);
        ws.onopen = ws.onclose = null;
        resolve(ws);
      };
      ws.onclose = () => {
        clearTimeout(timer);
        ws.onopen = ws.onclose = null;
        resolve("refused");
      };
    });
  }

  private urlFor(token: string | undefined): string {
    const url = new URL(this.url);
    url.searchParams.set("sessionId", this.sessionId);
    url.searchParams.set("role", this.role);
    if (token) url.searchParams.set("token", token);
    if (this.targetLanguage && this.role === "listener") url.searchParams.set("targetLanguage", this.targetLanguage);
    if (this.joinKey && this.role === "listener") url.searchParams.set("joinKey", this.joinKey);
    return url.toString();
  }
}
