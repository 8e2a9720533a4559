/** Fakes of the browser's fetch and WebSocket, and helpers the tests share. */
import type { TokenProvider } from "../src/index.js";

export interface Call {
  url: string;
  method: string;
  headers: Record<string, string>;
  body: unknown;
}

type Answer = Response | Error | ((call: Call) => Response | Error);

/** A fetch that answers from a script and records every call. */
export class FakeFetch {
  readonly calls: Call[] = [];
  private readonly answers: Answer[] = [];
  fallback: Answer | undefined;

  answer(...answers: Answer[]): this {
    this.answers.push(...answers);
    return this;
  }

  readonly fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const call: Call = {
      url: String(input), method: init.method ?? "GET",
      headers: Object.fromEntries(Object.entries((init.headers ?? {}) as Record<string, string>)),
      body: typeof init.body === "string" ? JSON.parse(init.body) : undefined,
    };
    this.calls.push(call);
    let answer = this.answers.shift() ?? this.fallback;
    if (answer === undefined) throw new Error(`unexpected ${call.method} ${call.url}`);
    if (typeof answer === "function") answer = answer(call);
    if (answer instanceof Error) throw answer;
    return answer.clone();
  };
}

export function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(status === 204 ? null : JSON.stringify(body), {
    status, headers: { "Content-Type": "application/json", ...headers },
  });
}

export const networkDown = () => new TypeError("Failed to fetch");

export function session(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    sessionId: "golden-eagle-427", speakerId: "user-1", sourceLanguage: "en", qualityTier: "standard",
    status: "active", listenerCount: 0, version: 1, createdAt: 1_795_687_200, updatedAt: 1_795_687_200,
    expiresAt: 1_795_773_600, ...overrides,
  };
}

export function errorBody(code: string, message: string, requestId = "req-1") {
  return { error: { code, message, requestId } };
}

/** An unsigned JWT with the given exp (the client reads exp; the server verifies). */
export function jwt(exp: number, name = "t"): string {
  const part = (value: object) => btoa(JSON.stringify(value)).replace(/=+$/, "").replace(/\+/g, "-").replace(/\//g, "_");
  return `${part({ alg: "none" })}.${part({ exp, name })}.sig`;
}

/** Tokens "token-1", "token-2", ... (or JWTs from `make`); counts refreshes. */
export class CountingTokens implements TokenProvider {
  issued = 1;
  refreshes = 0;
  constructor(private readonly make: (n: number) => string = (n) => `token-${n}`) {}
  async token(): Promise<string> {
    return this.make(this.issued);
  }
  async refresh(): Promise<string> {
    this.refreshes += 1;
    this.issued += 1;
    return this.make(this.issued);
  }
}

/** Records the sleeps instead of sleeping. */
export function recordingSleep(): { sleeps: number[]; sleep: (seconds: number) => Promise<void> } {
  const sleeps: number[] = [];
  return { sleeps, sleep: async (seconds: number) => void sleeps.push(seconds) };
}

// Node's, left real by the fake timers (the tests run in Node, not in a browser).
declare const setImmediate: (callback: () => void) => void;

/** Lets pending promise callbacks and real-time immediates run. */
export async function settle(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((resolve) => setImmediate(resolve));
}

/** A WebSocket the test opens, refuses, feeds and drops. */
export class FakeWebSocket {
  static readonly CONNECTING = 0;
  static readonly OPEN = 1;
  static readonly CLOSING = 2;
  static readonly CLOSED = 3;
  static instances: FakeWebSocket[] = [];

  readyState = FakeWebSocket.CONNECTING;
  readonly sent: string[] = [];
  closedWith: number | undefined;
  onopen: ((event: unknown) => void) | null = null;
  onclose: ((event: { code: number; reason: string }) => void) | null = null;
  onerror: ((event: unknown) => void) | null = null;
  onmessage: ((event: { data: string }) => void) | null = null;

  constructor(readonly url: string) {
    FakeWebSocket.instances.push(this);
  }

  static reset(): void {
    FakeWebSocket.instances = [];
  }

  static get last(): FakeWebSocket {
    return FakeWebSocket.instances[FakeWebSocket.instances.length - 1]!;
  }

  get query(): URLSearchParams {
    return new URL(this.url).searchParams;
  }

  /** Messages sent, parsed. */
  get messages(): Record<string, unknown>[] {
    return this.sent.map((text) => JSON.parse(text));
  }

  send(text: string): void {
    if (this.readyState !== FakeWebSocket.OPEN) throw new Error("send on a socket that is not open");
    this.sent.push(text);
  }

  close(code = 1000): void {
    this.closedWith ??= code;
    this.readyState = FakeWebSocket.CLOSED;
  }

  accept(): void {
    this.readyState = FakeWebSocket.OPEN;
    this.onopen?.({});
  }

  /** The handshake failed: a browser sees only a close (1006) before open. */
  refuse(): void {
    this.readyState = FakeWebSocket.CLOSED;
    this.onerror?.({});
    this.onclose?.({ code: 1006, reason: "" });
  }

  receive(message: object): void {
    this.onmessage?.({ data: JSON.stringify(message) });
  }

  /** The server or the network closed the connection. */
  drop(code = 1006, reason = ""): void {
    this.readyState = FakeWebSocket.CLOSED;
    this.onclose?.({ code, reason });
  }

  /** Answers every heartbeat sent so far that has not been answered. */
  ackHeartbeats(): void {
    const heartbeats = this.sent.filter((text) => text === '{"action":"heartbeat"}').length;
    for (let i = this.acked; i < heartbeats; i++) this.receive({ type: "heartbeatAck", serverTime: 1 });
    this.acked = heartbeats;
  }

  private acked = 0;
}
