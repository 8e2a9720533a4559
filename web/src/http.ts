/**
 * The HTTP session API: create, read, change and end sessions. Same rules as the Python client's
 * http_service.py:
 *
 * Retries: 5xx, 429 and network errors are retried up to `retry.maxRetries` (3) times with full-jitter
 * exponential backoff, obeying Retry-After; other 4xx never are. A 401 triggers one token refresh and one
 * more try.
 *
 * Offline queue: when the service cannot be reached at all (fetch fails, Cognito unreachable) or the
 * browser says it is offline (`offline` event, navigator.onLine), create/update/delete are queued and the
 * call throws OperationQueued (reads throw NetworkUnavailable: a stale answer later is no use). The queue
 * is replayed in order on the `online` event, by flush() and before the next call, so a later call never
 * overtakes a queued one. An operation leaves the queue once the server answered it (success or error);
 * replays reuse its headers, so a create carries the same Idempotency-Key every time and never creates twice.
 */
import {
  BroadcastClientError,
  ConfigurationError,
  NetworkUnavailable,
  OperationQueued,
  type PendingOperationView,
  QueueFull,
  SessionApiError,
  apiError,
} from "./errors.js";
import { bundlerEnv, ENV_NAMES } from "./config.js";
import { type Access, asSession, type QualityTier, type Session, type SessionStatus } from "./models.js";
import { backoff, DEFAULT_RETRY, parseRetryAfter, type RetryPolicy, sleep as realSleep } from "./retry.js";
import { DEFAULT_REFRESH_MARGIN, TokenManager, type TokenProvider } from "./tokens.js";

export const RETRYABLE_STATUSES = new Set([429, 500, 502, 503, 504]);

export interface SessionHttpServiceOptions {
  /** HttpApiUrl; defaults to the VITE_SESSION_API_URL env variable. */
  baseUrl?: string;
  tokenProvider: TokenProvider;
  retry?: RetryPolicy;
  /** Bound of the offline queue; 0 turns it off (unreachable means NetworkUnavailable). */
  maxQueued?: number;
  /** Seconds before a request is abandoned (then retried). */
  timeout?: number;
  refreshMargin?: number;
  fetch?: typeof fetch;
  /** Emits `online`/`offline` (the window); null for none. */
  connectivity?: EventTarget | null;
  isOnline?: () => boolean;
  now?: () => number;
  sleep?: (seconds: number) => Promise<void>;
  random?: () => number;
}

interface ApiRequest {
  method: string;
  path: string;
  body?: Record<string, unknown>;
  headers: Record<string, string>;
}

/** Internal: the last try could not reach the service. */
class Unreachable {
  constructor(readonly cause: unknown) {}
}

type Parse<T> = (response: Response) => Promise<T>;

class PendingOperation<T> implements PendingOperationView<T> {
  done = false;
  readonly result: Promise<T>;
  private settle!: { resolve: (value: T) => void; reject: (error: unknown) => void };

  constructor(readonly description: string, readonly request: ApiRequest, readonly parse: Parse<T>,
    private readonly queue: PendingOperation<unknown>[]) {
    this.result = new Promise<T>((resolve, reject) => (this.settle = { resolve, reject }));
    this.result.catch(() => undefined); // a caller that never awaits it must not see an unhandled rejection
  }

  get idempotencyKey(): string | undefined {
    return this.request.headers["Idempotency-Key"];
  }

  /** Takes the operation out of the queue; false if it already ran or is running. */
  cancel(): boolean {
    const index = this.queue.indexOf(this as PendingOperation<unknown>);
    if (index < 0) return false;
    this.queue.splice(index, 1);
    this.finish(undefined, new DOMException(`${this.description} was cancelled`, "AbortError"));
    return true;
  }

  finish(value: T | undefined, error?: unknown): void {
    this.done = true;
    if (error !== undefined) this.settle.reject(error);
    else this.settle.resolve(value as T);
  }
}

async function readJson(response: Response): Promise<unknown> {
  try {
    return await response.json();
  } catch {
    return undefined;
  }
}

async function sessionOf(response: Response): Promise<Session> {
  const session = asSession(await readJson(response));
  if (!session) {
    throw new SessionApiError(response.status, "INVALID_RESPONSE",
      "The session service answered with a body that is not a session.",
      response.headers.get("apigw-requestid") ?? undefined);
  }
  return session;
}

const nothing = async (): Promise<void> => undefined;

export class SessionHttpService {
  readonly baseUrl: string;
  private readonly tokens: TokenManager;
  private readonly retry: RetryPolicy;
  private readonly maxQueued: number;
  private readonly timeout: number;
  private readonly fetch: typeof fetch;
  private readonly isOnline: () => boolean;
  private readonly now: () => number;
  private readonly sleep: (seconds: number) => Promise<void>;
  private readonly random: () => number;
  private readonly queue: PendingOperation<unknown>[] = [];
  private replaying: Promise<unknown> = Promise.resolve();
  private offline = false;
  private readonly connectivity: EventTarget | null;
  private readonly onOnline = () => {
    this.offline = false;
    void this.flush();
  };
  private readonly onOffline = () => {
    this.offline = true;
  };

  constructor(options: SessionHttpServiceOptions) {
    const baseUrl = options.baseUrl ?? bundlerEnv()[ENV_NAMES.httpApiUrl] ?? "";
    if (!/^https?:\/\//.test(baseUrl)) {
      throw new ConfigurationError(`No session API URL: pass baseUrl or set ${ENV_NAMES.httpApiUrl} (the stack ` +
        "output HttpApiUrl, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/dev).");
    }
    if ((options.maxQueued ?? 100) < 0) throw new RangeError("maxQueued must be >= 0");
    this.baseUrl = baseUrl.replace(/\/+$/, "");
    this.now = options.now ?? Date.now;
    this.tokens = new TokenManager(options.tokenProvider, this.now, options.refreshMargin ?? DEFAULT_REFRESH_MARGIN);
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.maxQueued = options.maxQueued ?? 100;
    this.timeout = options.timeout ?? 10;
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
    this.isOnline = options.isOnline ?? (() => globalThis.navigator?.onLine ?? true);
    this.sleep = options.sleep ?? realSleep;
    this.random = options.random ?? Math.random;
    this.connectivity = options.connectivity !== undefined ? options.connectivity
      : typeof globalThis.addEventListener === "function" ? globalThis : null;
    this.connectivity?.addEventListener("online", this.onOnline);
    this.connectivity?.addEventListener("offline", this.onOffline);
  }

  /** Stops listening to online/offline events. */
  close(): void {
    this.connectivity?.removeEventListener("online", this.onOnline);
    this.connectivity?.removeEventListener("offline", this.onOffline);
  }

  // ------------------------------------------------------------ operations

  /** POST /sessions. The Idempotency-Key (a new UUID unless given) is sent on every retry and replay. `access`
   * (the service's default: "link", whose key comes back as `joinKey`) is sent when given. */
  createSession(sourceLanguage: string, qualityTier: QualityTier = "standard",
    options: { idempotencyKey?: string; access?: Access } = {}): Promise<Session> {
    const request: ApiRequest = {
      method: "POST", path: "sessions",
      body: { sourceLanguage, qualityTier, ...(options.access ? { access: options.access } : {}) },
      headers: { "Idempotency-Key": options.idempotencyKey ?? randomKey() },
    };
    return this.call(`create a ${sourceLanguage} session`, request, sessionOf, true);
  }

  getSession(sessionId: string): Promise<Session> {
    return this.call(`read session ${sessionId}`, { method: "GET", path: pathOf(sessionId), headers: {} },
      sessionOf, false);
  }

  /** PATCH /sessions/{id} with the given fields; `ifMatch` is the version last read. */
  updateSession(sessionId: string, changes: { status?: SessionStatus; sourceLanguage?: string;
    qualityTier?: QualityTier }, options: { ifMatch?: number } = {}): Promise<Session> {
    const body = Object.fromEntries(Object.entries(changes).filter(([, value]) => value !== undefined));
    if (!Object.keys(body).length) {
      return Promise.reject(new TypeError("give at least one of status, sourceLanguage, qualityTier"));
    }
    const headers: Record<string, string> = options.ifMatch !== undefined ? { "If-Match": `"${options.ifMatch}"` } : {};
    return this.call(`update session ${sessionId}`, { method: "PATCH", path: pathOf(sessionId), body, headers },
      sessionOf, true);
  }

  /** DELETE /sessions/{id}: ends the session (ending an ended one is fine too). */
  deleteSession(sessionId: string): Promise<void> {
    return this.call(`end session ${sessionId}`, { method: "DELETE", path: pathOf(sessionId), headers: {} },
      nothing, true);
  }

  // ----------------------------------------------------------------- queue

  /** Operations waiting for the service, oldest first. */
  get pending(): readonly PendingOperationView<unknown>[] {
    return [...this.queue];
  }

  /** Replays queued operations in order until the queue is empty or the service is still unreachable. */
  flush(): Promise<PendingOperationView<unknown>[]> {
    return this.exclusive(() => this.replay());
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.replaying.then(work);
    this.replaying = result.catch(() => undefined);
    return result;
  }

  private async replay(): Promise<PendingOperationView<unknown>[]> {
    const completed: PendingOperationView<unknown>[] = [];
    while (this.queue.length && !this.browserOffline) {
      // Out of the queue while in flight, so cancel() cannot pull it from under us.
      const operation = this.queue.shift()!;
      let response: Response;
      try {
        response = await this.send(operation.request);
      } catch (error) {
        if (error instanceof Unreachable) {
          this.queue.unshift(operation);
          break;
        }
        operation.finish(undefined, error);
        completed.push(operation);
        continue;
      }
      try {
        operation.finish(await this.parse(response, operation.parse));
      } catch (error) {
        operation.finish(undefined, error);
      }
      completed.push(operation);
    }
    return completed;
  }

  private enqueue<T>(description: string, request: ApiRequest, parse: Parse<T>): NetworkUnavailable {
    if (this.queue.length >= this.maxQueued) {
      return new QueueFull(`The session service is unreachable and ${this.queue.length} operation(s) are already ` +
        `waiting (the limit); '${description}' was not queued.`);
    }
    const operation = new PendingOperation<T>(description, request, parse, this.queue);
    this.queue.push(operation as PendingOperation<unknown>);
    return new OperationQueued(operation, this.queue.length);
  }

  // -------------------------------------------------------------- requests

  private get browserOffline(): boolean {
    return this.offline || !this.isOnline();
  }

  private async call<T>(description: string, request: ApiRequest, parse: Parse<T>, queueable: boolean): Promise<T> {
    // Offline (as the browser says): nothing is tried; changes wait in the queue for the `online` event.
    if (this.browserOffline) throw this.unavailable(description, request, parse, queueable, undefined);
    if (this.queue.length) {
      const stillWaiting = await this.exclusive(async () => {
        await this.replay();
        return this.queue.length > 0;
      });
      // still unreachable: stay behind what is already waiting
      if (stillWaiting) throw this.unavailable(description, request, parse, queueable, undefined);
    }
    let response: Response;
    try {
      response = await this.send(request);
    } catch (error) {
      if (error instanceof Unreachable) throw this.unavailable(description, request, parse, queueable, error.cause);
      throw error;
    }
    return this.parse(response, parse);
  }

  private unavailable<T>(description: string, request: ApiRequest, parse: Parse<T>, queueable: boolean,
    cause: unknown): NetworkUnavailable {
    if (queueable && this.maxQueued > 0) return this.enqueue(description, request, parse);
    if (cause instanceof BroadcastClientError) return new NetworkUnavailable(`Cannot ${description}: ${cause.message}`);
    const reason = cause !== undefined ? "" : this.browserOffline ? " (the browser is offline)"
      : ` (${this.queue.length} operation(s) waiting)`;
    return new NetworkUnavailable(`Cannot ${description}: the session service at ${this.baseUrl} is unreachable${reason}.`);
  }

  private async parse<T>(response: Response, parse: Parse<T>): Promise<T> {
    if (response.ok) return parse(response);
    const body = await readJson(response);
    throw apiError(response.status, body, response.headers.get("apigw-requestid") ?? undefined,
      parseRetryAfter(response.headers.get("Retry-After"), this.now()));
  }

  /** The final response after retries and at most one token refresh. Throws Unreachable or NetworkUnavailable. */
  private async send(request: ApiRequest): Promise<Response> {
    let retries = 0;
    let refreshed = false;
    for (;;) {
      let token: string;
      try {
        token = await this.tokens.get();
      } catch (error) {
        if (error instanceof NetworkUnavailable) throw new Unreachable(error);
        throw error;
      }
      const headers: Record<string, string> = { Accept: "application/json", ...request.headers,
        Authorization: `Bearer ${token}` };
      if (request.body) headers["Content-Type"] = "application/json";
      let response: Response;
      try {
        response = await this.fetch(`${this.baseUrl}/${request.path}`, {
          method: request.method, headers, body: request.body ? JSON.stringify(request.body) : undefined,
          signal: AbortSignal.timeout(this.timeout * 1000),
        });
      } catch (error) {
        if (retries < this.retry.maxRetries) {
          await this.sleep(backoff(this.retry, retries++, this.random));
          continue;
        }
        // fetch rejects with a TypeError when nothing came back (refused, DNS, offline); a timeout may
        // have reached the server, so it is reported rather than queued.
        if (error instanceof TypeError) throw new Unreachable(error);
        throw new NetworkUnavailable(`The session service at ${this.baseUrl} did not answer ${request.method} ` +
          `/${request.path} within ${this.timeout} s.`);
      }
      const status = response.status;
      if (status === 401 && !refreshed) {
        refreshed = true;
        if ((await this.tokens.rejected(token)) !== undefined) continue;
        return response;
      }
      if (RETRYABLE_STATUSES.has(status) && retries < this.retry.maxRetries && !(await isFinal(response))) {
        const retryAfter = parseRetryAfter(response.headers.get("Retry-After"), this.now());
        if (retryAfter !== undefined && retryAfter > this.retry.maxRetryAfter) return response;
        await this.sleep(retryAfter ?? backoff(this.retry, retries, this.random));
        retries += 1;
        continue;
      }
      return response;
    }
  }
}

/** A random UUID v4. crypto.randomUUID exists only in secure contexts (HTTPS, localhost); getRandomValues everywhere. */
export function randomKey(): string {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  bytes[6] = (bytes[6]! & 0x0f) | 0x40;
  bytes[8] = (bytes[8]! & 0x3f) | 0x80;
  const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function pathOf(sessionId: string): string {
  return `sessions/${encodeURIComponent(sessionId)}`;
}


/** A 429 that waiting cannot help: the user's live sessions at the service's cap (not API Gateway's throttling). */
async function isFinal(response: Response): Promise<boolean> {
  if (response.status !== 429) return false;
  try {
    const body: unknown = await response.clone().json();
    const error = (body as { error?: { code?: unknown } } | null)?.error;
    return error?.code === "SESSION_LIMIT_REACHED";
  } catch {
    return false;
  }
}
