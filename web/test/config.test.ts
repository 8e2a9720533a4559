import { describe, expect, it } from "vitest";
import { apiError, checkConfig, configFromEnv, ConfigurationError, ServiceUnavailable, SessionApiError, Unauthorized } from "../src/index.js";

const STACK = { httpApiUrl: "https://a.example.com/dev", webSocketUrl: "wss://b.example.com/dev", region: "eu-west-1",
  userPoolId: "eu-west-1_abc", userPoolClientId: "client-1" };

describe("configuration", () => {
  it("reads the stack outputs from VITE_* variables", () => {
    expect(configFromEnv({ VITE_SESSION_API_URL: STACK.httpApiUrl, VITE_WEBSOCKET_URL: STACK.webSocketUrl,
      VITE_REGION: "eu-west-1", VITE_USER_POOL_ID: "eu-west-1_abc", VITE_USER_POOL_CLIENT_ID: "client-1",
      VITE_ALLOW_ANONYMOUS_LISTENERS: "false" })).toEqual({ ...STACK, cognitoEndpoint: undefined,
      allowAnonymousListeners: false });
    expect(configFromEnv({})).toBeUndefined();
  });

  it("names what is missing or wrong", () => {
    expect(() => checkConfig({ ...STACK, userPoolClientId: "", region: undefined }))
      .toThrow(new ConfigurationError("The configuration lacks region, userPoolClientId."));
    expect(() => checkConfig({ ...STACK, webSocketUrl: "https://b" })).toThrow("ws:// or wss://");
    expect(checkConfig({ ...STACK, cognitoEndpoint: "http://127.0.0.1:4566" }).cognitoEndpoint).toBe("http://127.0.0.1:4566");
  });
});

describe("errors", () => {
  it("reads API Gateway's bare bodies and anything else", () => {
    const gateway = apiError(401, { message: "Unauthorized" });
    expect(gateway).toBeInstanceOf(Unauthorized);
    expect(gateway).toMatchObject({ code: "UNAUTHORIZED" });
    const html = apiError(502, "<html>bad gateway</html>", "gw-1");
    expect(html).toBeInstanceOf(ServiceUnavailable);
    expect(html).toMatchObject({ code: "HTTP_502", detail: "The session service answered HTTP 502.", requestId: "gw-1" });
    expect(apiError(418, null)).toBeInstanceOf(SessionApiError);
  });
});
