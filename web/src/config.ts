/**
 * Where the service is. The stack outputs (HttpApiUrl, WebSocketUrl, UserPoolId, UserPoolClientId, Region)
 * or the local stack's description, as one object; read from Vite-style env variables or given explicitly.
 */
import { ConfigurationError } from "./errors.js";

export interface BroadcastConfig {
  /** HttpApiUrl, e.g. https://abc.execute-api.eu-west-1.amazonaws.com/dev */
  httpApiUrl: string;
  /** WebSocketUrl, e.g. wss://def.execute-api.eu-west-1.amazonaws.com/dev */
  webSocketUrl: string;
  region: string;
  userPoolId?: string;
  userPoolClientId: string;
  /** Cognito's endpoint; empty on AWS (the regional one), the local stack's moto endpoint locally. */
  cognitoEndpoint?: string;
  /** Whether listeners may join without signing in (the AllowAnonymousListeners parameter). */
  allowAnonymousListeners?: boolean;
}

/** The env variables read by configFromEnv, as Vite exposes them (import.meta.env). */
export const ENV_NAMES = {
  httpApiUrl: "VITE_SESSION_API_URL",
  webSocketUrl: "VITE_WEBSOCKET_URL",
  region: "VITE_REGION",
  userPoolId: "VITE_USER_POOL_ID",
  userPoolClientId: "VITE_USER_POOL_CLIENT_ID",
  cognitoEndpoint: "VITE_COGNITO_ENDPOINT",
  allowAnonymousListeners: "VITE_ALLOW_ANONYMOUS_LISTENERS",
} as const;

/** The bundler's env (import.meta.env under Vite or Vitest), or {} elsewhere. */
export function bundlerEnv(): Record<string, string | undefined> {
  // Written out as `import.meta.env` so that Vite replaces it in an application's build.
  return (import.meta.env as Record<string, string | undefined> | undefined) ?? {};
}

/** The configuration from VITE_* variables; undefined when VITE_SESSION_API_URL is not set. */
export function configFromEnv(env: Record<string, string | boolean | undefined> = bundlerEnv()): BroadcastConfig | undefined {
  const read = (key: keyof typeof ENV_NAMES) => {
    const value = env[ENV_NAMES[key]];
    return value === undefined ? undefined : String(value);
  };
  if (!read("httpApiUrl")) return undefined;
  return checkConfig({
    httpApiUrl: read("httpApiUrl")!,
    webSocketUrl: read("webSocketUrl") ?? "",
    region: read("region") ?? "",
    userPoolId: read("userPoolId"),
    userPoolClientId: read("userPoolClientId") ?? "",
    cognitoEndpoint: read("cognitoEndpoint"),
    allowAnonymousListeners: read("allowAnonymousListeners") !== "false",
  });
}

/** The configuration as given (e.g. a config.json), checked: a clear error names what is missing. */
export function checkConfig(value: unknown): BroadcastConfig {
  const config = (typeof value === "object" && value !== null ? value : {}) as Record<string, unknown>;
  const missing = ["httpApiUrl", "webSocketUrl", "region", "userPoolClientId"].filter(
    (key) => typeof config[key] !== "string" || !config[key]);
  if (missing.length) throw new ConfigurationError(`The configuration lacks ${missing.join(", ")}.`);
  if (!/^https?:\/\//.test(config.httpApiUrl as string)) {
    throw new ConfigurationError("httpApiUrl must start with http:// or https:// (the stack output HttpApiUrl).");
  }
  if (!/^wss?:\/\//.test(config.webSocketUrl as string)) {
    throw new ConfigurationError("webSocketUrl must start with ws:// or wss:// (the stack output WebSocketUrl).");
  }
  return {
    httpApiUrl: config.httpApiUrl as string,
    webSocketUrl: config.webSocketUrl as string,
    region: config.region as string,
    userPoolId: typeof config.userPoolId === "string" ? config.userPoolId : undefined,
    userPoolClientId: config.userPoolClientId as string,
    cognitoEndpoint: typeof config.cognitoEndpoint === "string" && config.cognitoEndpoint ? config.cognitoEndpoint
      : undefined,
    allowAnonymousListeners: config.allowAnonymousListeners !== false,
  };
}
