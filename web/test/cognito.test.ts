import { describe, expect, it } from "vitest";
import { AuthenticationFailed, CognitoAuth, ConfigurationError, NetworkUnavailable, SessionHttpService } from "../src/index.js";
import { FakeFetch, json, jwt, session } from "./fakes.js";

const TARGET = "AWSCognitoIdentityProviderService.InitiateAuth";

function auth(fake: FakeFetch, options: { endpoint?: string; tokenUse?: "id" | "access" } = {}) {
  return new CognitoAuth({ clientId: "client-1", region: "eu-west-1", fetch: fake.fetch, ...options });
}

const tokens = (id: string, refresh?: string) =>
  json(200, { AuthenticationResult: { IdToken: id, AccessToken: `access-${id}`, RefreshToken: refresh, ExpiresIn: 3600 } });

describe("CognitoAuth", () => {
  it("signs in with USER_PASSWORD_AUTH against the pool's JSON API", async () => {
    const fake = new FakeFetch().answer(tokens("id-1", "refresh-1"));
    const cognito = auth(fake);
    await cognito.signIn("alice", "Secret-Pass-1");
    expect(await cognito.token()).toBe("id-1");
    expect(cognito.username).toBe("alice");
    const call = fake.calls[0]!;
    expect(call.url).toBe("https://cognito-idp.eu-west-1.amazonaws.com/");
    expect(call.method).toBe("POST");
    expect(call.headers).toEqual({ "Content-Type": "application/x-amz-json-1.1", "X-Amz-Target": TARGET });
    expect(call.body).toEqual({ AuthFlow: "USER_PASSWORD_AUTH", ClientId: "client-1",
      AuthParameters: { USERNAME: "alice", PASSWORD: "Secret-Pass-1" } });
  });

  it("refreshes with REFRESH_TOKEN_AUTH, at the endpoint given (the local stack's)", async () => {
    const fake = new FakeFetch().answer(tokens("id-1", "refresh-1"), tokens("id-2"));
    const cognito = auth(fake, { endpoint: "http://127.0.0.1:4566", tokenUse: "access" });
    await cognito.signIn("alice", "pw");
    expect(await cognito.refresh()).toBe("access-id-2");
    expect(fake.calls[1]).toMatchObject({ url: "http://127.0.0.1:4566",
      body: { AuthFlow: "REFRESH_TOKEN_AUTH", ClientId: "client-1", AuthParameters: { REFRESH_TOKEN: "refresh-1" } } });
  });

  it("says why a sign-in was refused, and never shows the password", async () => {
    const fake = new FakeFetch().answer(json(400, { __type: "NotAuthorizedException", message: "Incorrect username or password." }));
    const error = await auth(fake).signIn("alice", "wrong-pass-1").catch((e) => e);
    expect(error).toBeInstanceOf(AuthenticationFailed);
    expect(error.message).toBe("Cognito refused to sign in alice: Incorrect username or password.");
    expect(error.message).not.toContain("wrong-pass-1");
  });

  it("asks for a challenge to be completed first", async () => {
    const fake = new FakeFetch().answer(json(200, { ChallengeName: "NEW_PASSWORD_REQUIRED", Session: "s" }));
    await expect(auth(fake).signIn("bob", "pw")).rejects.toThrow("NEW_PASSWORD_REQUIRED");
  });

  it("tells an unreachable or busy Cognito from a refusal", async () => {
    const down = new FakeFetch().answer(new TypeError("Failed to fetch"));
    await expect(auth(down).signIn("alice", "pw")).rejects.toBeInstanceOf(NetworkUnavailable);
    const busy = new FakeFetch().answer(json(400, { __type: "com.amazonaws.cognito#TooManyRequestsException" }));
    await expect(auth(busy).signIn("alice", "pw")).rejects.toBeInstanceOf(NetworkUnavailable);
    const failing = new FakeFetch().answer(json(500, {}));
    await expect(auth(failing).signIn("alice", "pw")).rejects.toBeInstanceOf(NetworkUnavailable);
  });

  it("asks to sign in again when the refresh token is refused, and before any sign-in", async () => {
    const fake = new FakeFetch().answer(tokens("id-1", "refresh-1"),
      json(400, { __type: "NotAuthorizedException", message: "Refresh Token has expired" }));
    const cognito = auth(fake);
    await expect(cognito.token()).rejects.toThrow("sign in first");
    await cognito.signIn("alice", "pw");
    await expect(cognito.refresh()).rejects.toThrow("Refresh Token has expired");
    expect(cognito.signedIn).toBe(false);
    expect(() => new CognitoAuth({ clientId: "", region: "eu-west-1" })).toThrow(ConfigurationError);
  });

  it("is refreshed by the HTTP service before its token expires", async () => {
    const now = Date.now();
    const soon = jwt(now / 1000 + 30, "first");
    const later = jwt(now / 1000 + 3600, "second");
    const fake = new FakeFetch().answer(tokens(soon, "refresh-1"), tokens(later), json(200, session()));
    const cognito = auth(fake);
    await cognito.signIn("alice", "pw");
    const http = new SessionHttpService({ baseUrl: "https://api.example.com/dev", tokenProvider: cognito,
      fetch: fake.fetch, now: () => now, connectivity: null });
    await http.getSession("golden-eagle-427");
    expect(fake.calls.map((c) => (c.body as { AuthFlow?: string } | undefined)?.AuthFlow ?? c.method))
      .toEqual(["USER_PASSWORD_AUTH", "REFRESH_TOKEN_AUTH", "GET"]);
    expect(fake.calls[2]!.headers.Authorization).toBe(`Bearer ${later}`);
  });
});
