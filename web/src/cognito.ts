/**
 * Sign-in with a Cognito user pool through its documented JSON API (InitiateAuth): USER_PASSWORD_AUTH,
 * then REFRESH_TOKEN_AUTH to keep the tokens fresh. InitiateAuth needs no AWS credentials, so the
 * browser calls it directly; the app client must allow ALLOW_USER_PASSWORD_AUTH and have no secret.
 * Works against AWS and the local stack (its `awsEndpointUrl`).
 *
 * Unlike the Python client, the password is not kept: when the refresh token itself is refused
 * (expired or revoked), refresh() throws AuthenticationFailed and the user signs in again.
 */
import { AuthenticationFailed, ConfigurationError, NetworkUnavailable } from "./errors.js";
import type { TokenProvider } from "./tokens.js";

export interface CognitoAuthOptions {
  /** The app client ID (the stack output UserPoolClientId). */
  clientId: string;
  region: string;
  /** Defaults to https://cognito-idp.{region}.amazonaws.com/; the local stack's is its awsEndpointUrl. */
  endpoint?: string;
  /** Which token to hand out: the ID token (default; audience = app client) or the access token. */
  tokenUse?: "id" | "access";
  fetch?: typeof fetch;
}

interface AuthenticationResult {
  IdToken?: string;
  AccessToken?: string;
  RefreshToken?: string;
  ExpiresIn?: number;
}

const UNAVAILABLE = new Set(["TooManyRequestsException", "InternalErrorException", "ServiceUnavailable"]);

export class CognitoAuth implements TokenProvider {
  readonly endpoint: string;
  private readonly clientId: string;
  private readonly resultKey: "IdToken" | "AccessToken";
  private readonly fetch: typeof fetch;
  private current: string | undefined;
  private refreshToken: string | undefined;
  private user: string | undefined;

  constructor(options: CognitoAuthOptions) {
    if (!options.clientId || !options.region) {
      throw new ConfigurationError("Cognito sign-in needs the app client ID and the region (the stack outputs " +
        "UserPoolClientId and Region).");
    }
    this.clientId = options.clientId;
    this.endpoint = options.endpoint || `https://cognito-idp.${options.region}.amazonaws.com/`;
    this.resultKey = options.tokenUse === "access" ? "AccessToken" : "IdToken";
    this.fetch = options.fetch ?? globalThis.fetch.bind(globalThis);
  }

  /** The signed-in user's name, if any. */
  get username(): string | undefined {
    return this.user;
  }

  get signedIn(): boolean {
    return this.current !== undefined;
  }

  async signIn(username: string, password: string): Promise<void> {
    if (!username || !password) throw new AuthenticationFailed("Enter a username and a password.");
    const result = await this.initiate("USER_PASSWORD_AUTH", { USERNAME: username, PASSWORD: password }, username);
    this.current = result[this.resultKey];
    this.refreshToken = result.RefreshToken;
    this.user = username;
  }

  signOut(): void {
    this.current = this.refreshToken = this.user = undefined;
  }

  async token(): Promise<string> {
    if (this.current === undefined) throw new AuthenticationFailed("Not signed in: sign in first.");
    return this.current;
  }

  async refresh(): Promise<string> {
    if (!this.refreshToken || !this.user) throw new AuthenticationFailed("Not signed in: sign in first.");
    try {
      const result = await this.initiate("REFRESH_TOKEN_AUTH", { REFRESH_TOKEN: this.refreshToken }, this.user);
      this.current = result[this.resultKey];
      return this.current!;
    } catch (error) {
      if (error instanceof AuthenticationFailed) this.signOut(); // expired or revoked: sign in again
      throw error;
    }
  }

  private async initiate(flow: string, parameters: Record<string, string>, user: string): Promise<AuthenticationResult> {
    let response: Response;
    try {
      response = await this.fetch(this.endpoint, {
        method: "POST",
        headers: {
          "Content-Type": "application/x-amz-json-1.1",
          "X-Amz-Target": "AWSCognitoIdentityProviderService.InitiateAuth",
        },
        body: JSON.stringify({ AuthFlow: flow, ClientId: this.clientId, AuthParameters: parameters }),
      });
    } catch {
      throw new NetworkUnavailable(`Cannot reach Cognito at ${this.endpoint}.`);
    }
    const body = (await response.json().catch(() => ({}))) as Record<string, unknown>;
    if (!response.ok) {
      // __type is "NotAuthorizedException" or "com.amazonaws...#NotAuthorizedException".
      const code = String(body.__type ?? body.code ?? "").split("#").pop() || `HTTP_${response.status}`;
      const message = String(body.message ?? body.Message ?? "");
      if (UNAVAILABLE.has(code) || response.status >= 500) {
        throw new NetworkUnavailable(`Cognito is unavailable (${code}); try again shortly.`);
      }
      throw new AuthenticationFailed(`Cognito refused to sign in ${user}: ${message || code}`);
    }
    const result = body.AuthenticationResult as AuthenticationResult | undefined;
    if (!result?.[this.resultKey]) {
      const challenge = typeof body.ChallengeName === "string" ? body.ChallengeName : "challenge";
      throw new AuthenticationFailed(`Cognito asks ${user} to complete a ${challenge} step first ` +
        "(for example, set a permanent password).");
    }
    return result;
  }
}
