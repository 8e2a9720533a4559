import { afterEach, describe, expect, it, vi } from "vitest";
import {
  ConfigurationError,
  NetworkUnavailable,
  NotFound,
  OperationQueued,
  QueueFull,
  RateLimited,
  ServiceUnavailable,
  SessionApiError,
  SessionEnded,
  SessionHttpService,
  SessionLimitReached,
  type SessionHttpServiceOptions,
  Unauthorized,
  ValidationFailed,
  VersionConflict,
} from "../src/index.js";
import { CountingTokens, errorBody, FakeFetch, json, jwt, networkDown, recordingSleep, session, settle } from "./fakes.js";

const BASE = "https://api.example.com/dev";

function service(fake: FakeFetch, options: Partial<SessionHttpServiceOptions> = {}) {
  const { sleeps, sleep } = recordingSleep();
  const tokens = new CountingTokens();
  const connectivity = new EventTarget();
  let online = true;
  const http = new SessionHttpService({
    baseUrl: BASE, tokenProvider: tokens, fetch: fake.fetch, sleep, random: () => 1, connectivity,
    isOnline: () => online, ...options,
  });
  const goOffline = () => {
    online = false;
    connectivity.dispatchEvent(new Event("offline"));
  };
  const goOnline = () => {
    online = true;
    connectivity.dispatchEvent(new Event("online"));
  };
  return { http, sleeps, tokens, goOffline, goOnline };
}

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("configuration", () => {
  it("takes the base URL from the Vite env when none is given", async () => {
    vi.stubEnv("VITE_SESSION_API_URL", "https://from-env.example.com/prod/");
    const fake = new FakeFetch().answer(json(200, session()));
    const http = new SessionHttpService({ tokenProvider: new CountingTokens(), fetch: fake.fetch, connectivity: null });
    await http.getSession("golden-eagle-427");
    expect(fake.calls[0]!.url).toBe("https://from-env.example.com/prod/sessions/golden-eagle-427");
  });

  it("refuses to start without a URL", () => {
    vi.stubEnv("VITE_SESSION_API_URL", "");
    expect(() => new SessionHttpService({ tokenProvider: new CountingTokens(), connectivity: null }))
      .toThrow(ConfigurationError);
  });
});

describe("requests", () => {
  it("sends the bearer token, JSON and an Idempotency-Key on create", async () => {
    const fake = new FakeFetch().answer(json(201, session()));
    const { http } = service(fake);
    const created = await http.createSession("fr", "premium");
    expect(created.sessionId).toBe("golden-eagle-427");
    const call = fake.calls[0]!;
    expect(call).toMatchObject({ url: `${BASE}/sessions`, method: "POST",
      body: { sourceLanguage: "fr", qualityTier: "premium" } });
    expect(call.headers.Authorization).toBe("Bearer token-1");
    expect(call.headers["Content-Type"]).toBe("application/json");
    expect(call.headers["Idempotency-Key"]).toMatch(/^[0-9a-f-]{36}$/);
  });

  it("sends the access given and reads a link session's join key back", async () => {
    const key = "k".repeat(32);
    const fake = new FakeFetch().answer(json(201, session({ access: "link", joinKey: key })),
      json(201, session({ access: "public" })));
    const { http } = service(fake);
    const link = await http.createSession("en");
    const open = await http.createSession("en", "standard", { access: "public" });
    expect(fake.calls[0]!.body).toEqual({ sourceLanguage: "en", qualityTier: "standard" });
    expect(fake.calls[1]!.body).toEqual({ sourceLanguage: "en", qualityTier: "standard", access: "public" });
    expect([link.access, link.joinKey]).toEqual(["link", key]);
    expect([open.access, open.joinKey]).toEqual(["public", undefined]);
  });

  it("does not retry the session limit (429 SESSION_LIMIT_REACHED)", async () => {
    const fake = new FakeFetch().answer(json(429, errorBody("SESSION_LIMIT_REACHED", "Nope.")));
    const { http, sleeps } = service(fake);
    const error = await http.createSession("en").catch((e) => e);
    expect(error).toBeInstanceOf(SessionLimitReached);
    expect(error).not.toBeInstanceOf(ServiceUnavailable);
    expect(error).toMatchObject({ status: 429, code: "SESSION_LIMIT_REACHED" });
    expect(fake.calls).toHaveLength(1);
    expect(sleeps).toEqual([]);
  });

  it("uses the Idempotency-Key given, and a new one for each create", async () => {
    const fake = new FakeFetch().answer(json(201, session()), json(201, session()), json(201, session()));
    const { http } = service(fake);
    await http.createSession("en", "standard", { idempotencyKey: "my-key-123" });
    await http.createSession("en");
    await http.createSession("en");
    const keys = fake.calls.map((c) => c.headers["Idempotency-Key"]);
    expect(keys[0]).toBe("my-key-123");
    expect(new Set(keys).size).toBe(3);
  });

  it("makes a UUID key outside a secure context too (no crypto.randomUUID)", async () => {
    // randomUUID lives on Crypto's prototype: an own property hides it, deleting it brings it back.
    Object.defineProperty(crypto, "randomUUID", { value: undefined, configurable: true });
    try {
      const fake = new FakeFetch().answer(json(201, session()));
      await service(fake).http.createSession("en");
      expect(fake.calls[0]!.headers["Idempotency-Key"]).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    } finally {
      delete (crypto as { randomUUID?: unknown }).randomUUID;
    }
    expect(typeof crypto.randomUUID).toBe("function");
  });

  it("sends the token on every call, If-Match and an encoded path", async () => {
    const fake = new FakeFetch().answer(json(200, session({ status: "paused" })), json(204, null), json(200, session()));
    const { http } = service(fake);
    await http.updateSession("golden-eagle-427", { status: "paused" }, { ifMatch: 3 });
    await http.deleteSession("a/b");
    await http.getSession("golden-eagle-427");
    expect(fake.calls.map((c) => [c.method, c.url, c.headers.Authorization])).toEqual([
      ["PATCH", `${BASE}/sessions/golden-eagle-427`, "Bearer token-1"],
      ["DELETE", `${BASE}/sessions/a%2Fb`, "Bearer token-1"],
      ["GET", `${BASE}/sessions/golden-eagle-427`, "Bearer token-1"],
    ]);
    expect(fake.calls[0]!.headers["If-Match"]).toBe('"3"');
    expect(fake.calls[0]!.body).toEqual({ status: "paused" });
  });

  it("refuses an update with nothing to change", async () => {
    const { http } = service(new FakeFetch());
    await expect(http.updateSession("golden-eagle-427", {})).rejects.toThrow(TypeError);
  });

  it("reports a body that is not a session", async () => {
    const fake = new FakeFetch().answer(json(200, { hello: "world" }));
    const { http } = service(fake);
    await expect(http.getSession("golden-eagle-427")).rejects.toMatchObject({ code: "INVALID_RESPONSE", status: 200 });
  });
});

describe("tokens", () => {
  it("refreshes an expired token once and retries", async () => {
    const fake = new FakeFetch().answer(json(401, { message: "Unauthorized" }), json(200, session()));
    const { http, tokens } = service(fake);
    await http.getSession("golden-eagle-427");
    expect(fake.calls.map((c) => c.headers.Authorization)).toEqual(["Bearer token-1", "Bearer token-2"]);
    expect(tokens.refreshes).toBe(1);
  });

  it("gives up after the refreshed token is refused too", async () => {
    const fake = new FakeFetch().answer(json(401, { message: "Unauthorized" }), json(401, { message: "Unauthorized" }));
    const { http } = service(fake);
    const error = await http.getSession("golden-eagle-427").catch((e) => e);
    expect(error).toBeInstanceOf(Unauthorized);
    expect(error).toMatchObject({ status: 401, code: "UNAUTHORIZED" });
    expect(error.detail).toContain("missing, expired or issued for another stack");
    expect(fake.calls).toHaveLength(2);
  });

  it("refreshes a token about to expire before sending it", async () => {
    const now = 1_800_000_000_000;
    const tokens = new CountingTokens((n) => jwt(n === 1 ? now / 1000 + 30 : now / 1000 + 3600, `t${n}`));
    const fake = new FakeFetch().answer(json(200, session()));
    const http = new SessionHttpService({ baseUrl: BASE, tokenProvider: tokens, fetch: fake.fetch, now: () => now,
      connectivity: null });
    await http.getSession("golden-eagle-427");
    expect(tokens.refreshes).toBe(1);
    expect(fake.calls[0]!.headers.Authorization).toBe(`Bearer ${jwt(now / 1000 + 3600, "t2")}`);
  });
});

describe("retries", () => {
  it("retries a 5xx 3 times with exponential backoff and full jitter, then throws a typed error", async () => {
    const fake = new FakeFetch();
    fake.fallback = json(503, errorBody("SERVICE_UNAVAILABLE", "The service is busy.", "req-9"));
    const { http, sleeps } = service(fake);
    const error = await http.getSession("golden-eagle-427").catch((e) => e);
    expect(fake.calls).toHaveLength(4);
    expect(sleeps).toEqual([0.5, 1, 2]); // random() = 1: the top of each window
    expect(error).toBeInstanceOf(ServiceUnavailable);
    expect(error).toMatchObject({ status: 503, code: "SERVICE_UNAVAILABLE", detail: "The service is busy.",
      requestId: "req-9" });
  });

  it("jitters each wait inside its window", async () => {
    const fake = new FakeFetch().answer(json(500, {}), json(502, {}), json(201, session()));
    const { http, sleeps } = service(fake, { random: () => 0.25 });
    await http.createSession("en");
    expect(sleeps).toEqual([0.125, 0.25]);
    const keys = fake.calls.map((c) => c.headers["Idempotency-Key"]);
    expect(new Set(keys).size).toBe(1); // the same key on every retry: created once
  });

  it.each([
    [400, "VALIDATION_ERROR", ValidationFailed],
    [403, "FORBIDDEN", SessionApiError],
    [404, "SESSION_NOT_FOUND", NotFound],
    [409, "SESSION_ENDED", SessionEnded],
    [409, "VERSION_CONFLICT", VersionConflict],
  ])("never retries a %i (%s)", async (status, code, type) => {
    const fake = new FakeFetch().answer(json(status, errorBody(code, "Nope.", "req-4")));
    const { http, sleeps } = service(fake);
    const error = await http.updateSession("golden-eagle-427", { status: "paused" }).catch((e) => e);
    expect(fake.calls).toHaveLength(1);
    expect(sleeps).toEqual([]);
    expect(error).toBeInstanceOf(type);
    expect(error).toMatchObject({ status, code, detail: "Nope.", requestId: "req-4" });
    expect(error.message).toBe(`Nope. (HTTP ${status} ${code}, request ID req-4)`);
  });

  it("obeys Retry-After, and returns a wait too long to sleep through with the error", async () => {
    const fake = new FakeFetch().answer(json(429, { message: "Too Many Requests" }, { "Retry-After": "2" }),
      json(200, session()), json(429, { message: "Too Many Requests" }, { "Retry-After": "600" }));
    const { http, sleeps } = service(fake);
    await http.getSession("golden-eagle-427");
    expect(sleeps).toEqual([2]);
    const error = await http.getSession("golden-eagle-427").catch((e) => e);
    expect(error).toBeInstanceOf(RateLimited);
    expect(error).toMatchObject({ status: 429, code: "TOO_MANY_REQUESTS", retryAfter: 600 });
  });

  it("retries network errors 3 times before giving up", async () => {
    const fake = new FakeFetch();
    fake.fallback = networkDown();
    const { http, sleeps } = service(fake);
    const error = await http.getSession("golden-eagle-427").catch((e) => e);
    expect(fake.calls).toHaveLength(4);
    expect(sleeps).toEqual([0.5, 1, 2]);
    expect(error).toBeInstanceOf(NetworkUnavailable); // a read is never queued
    expect(error).not.toBeInstanceOf(OperationQueued);
  });

  it("reports a timeout without queueing: the request may have arrived", async () => {
    const fake = new FakeFetch();
    fake.fallback = new DOMException("signal timed out", "TimeoutError");
    const { http } = service(fake);
    const error = await http.deleteSession("golden-eagle-427").catch((e) => e);
    expect(error).toBeInstanceOf(NetworkUnavailable);
    expect(error).not.toBeInstanceOf(OperationQueued);
    expect(http.pending).toHaveLength(0);
  });
});

describe("offline queue", () => {
  it("queues changes while unreachable and replays them in order when the browser is back online", async () => {
    const fake = new FakeFetch();
    fake.fallback = networkDown();
    const { http, goOnline } = service(fake);
    const create = await http.createSession("en").catch((e) => e);
    const pause = await http.updateSession("golden-eagle-427", { status: "paused" }).catch((e) => e);
    expect(create).toBeInstanceOf(OperationQueued);
    expect(pause).toBeInstanceOf(OperationQueued);
    expect(http.pending.map((p) => p.description)).toEqual(["create a en session", "update session golden-eagle-427"]);
    const key = create.operation.idempotencyKey;

    fake.calls.length = 0;
    fake.fallback = undefined;
    fake.answer(json(201, session()), json(409, errorBody("SESSION_ENDED", "It ended.")));
    goOnline();
    await expect(create.operation.result).resolves.toMatchObject({ sessionId: "golden-eagle-427" });
    await expect(pause.operation.result).rejects.toBeInstanceOf(SessionEnded);
    expect(fake.calls.map((c) => c.method)).toEqual(["POST", "PATCH"]);
    expect(fake.calls[0]!.headers["Idempotency-Key"]).toBe(key); // replayed with the same key
    expect(http.pending).toHaveLength(0);
  });

  it("queues without trying while the browser is offline, and a later call never overtakes the queue", async () => {
    const fake = new FakeFetch();
    const { http, goOffline, goOnline } = service(fake);
    goOffline();
    const ended = await http.deleteSession("golden-eagle-427").catch((e) => e);
    expect(ended).toBeInstanceOf(OperationQueued);
    await expect(http.getSession("golden-eagle-427")).rejects.toBeInstanceOf(NetworkUnavailable);
    expect(fake.calls).toHaveLength(0);

    fake.answer(json(204, null), json(200, session({ status: "ended" })));
    goOnline();
    await ended.operation.result;
    const read = await http.getSession("golden-eagle-427");
    expect(read.status).toBe("ended");
    expect(fake.calls.map((c) => c.method)).toEqual(["DELETE", "GET"]);
  });

  it("replays before the next call when it was not told the network came back", async () => {
    const fake = new FakeFetch();
    fake.fallback = networkDown();
    const { http } = service(fake);
    const queued = await http.deleteSession("golden-eagle-427").catch((e) => e);
    fake.fallback = undefined;
    fake.answer(json(204, null), json(200, session()));
    await http.getSession("golden-eagle-427");
    expect(queued.operation.done).toBe(true);
    expect(fake.calls.slice(-2).map((c) => c.method)).toEqual(["DELETE", "GET"]);
  });

  it("is bounded, can be turned off, and an operation can be cancelled", async () => {
    const fake = new FakeFetch();
    const { http, goOffline } = service(fake, { maxQueued: 1 });
    goOffline();
    const first = await http.deleteSession("golden-eagle-427").catch((e) => e);
    await expect(http.deleteSession("silent-owl-999")).rejects.toBeInstanceOf(QueueFull);
    expect(first.operation.cancel()).toBe(true);
    await expect(first.operation.result).rejects.toThrow("cancelled");
    expect(http.pending).toHaveLength(0);

    const off = service(fake, { maxQueued: 0 });
    off.goOffline();
    const error = await off.http.deleteSession("golden-eagle-427").catch((e) => e);
    expect(error).toBeInstanceOf(NetworkUnavailable);
    expect(error).not.toBeInstanceOf(OperationQueued);
  });

  it("stops listening to online events when closed", async () => {
    const fake = new FakeFetch();
    const { http, goOffline, goOnline } = service(fake);
    goOffline();
    await http.deleteSession("golden-eagle-427").catch(() => undefined);
    http.close();
    goOnline();
    await settle();
    expect(fake.calls).toHaveLength(0);
  });
});
