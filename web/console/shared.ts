/** What both pages share: configuration, sign-in, small DOM helpers, and errors in words. */
import {
  type BroadcastConfig,
  BroadcastClientError,
  checkConfig,
  CognitoAuth,
  configFromEnv,
  type ConnectionState,
  type ServerMessage,
  SessionApiError,
} from "../src/index.js";

export type ConsoleConfig = BroadcastConfig & { localUsers?: string[] };

/** Build-time VITE_* variables win; otherwise config.json next to the pages (the local stack serves one). */
async function loadConfig(): Promise<ConsoleConfig> {
  const fromEnv = configFromEnv();
  if (fromEnv) return fromEnv;
  const response = await fetch("./config.json", { cache: "no-store" });
  if (!response.ok) throw new Error(`config.json could not be read (HTTP ${response.status}).`);
  const raw = (await response.json()) as Record<string, unknown>;
  const localUsers = Array.isArray(raw.localUsers) ? raw.localUsers.map(String) : undefined;
  return { ...checkConfig(raw), localUsers };
}

export function byId<T extends HTMLElement = HTMLElement>(id: string): T {
  const element = document.getElementById(id);
  if (!element) throw new Error(`#${id} is missing from the page`);
  return element as T;
}

export function text(id: string, value: string | number): void {
  byId(id).textContent = String(value);
}

export function notice(message: string, kind: "info" | "error" = "info"): void {
  const element = byId("notice");
  element.textContent = message;
  element.className = `notice${kind === "error" ? " error" : ""}`;
}

export function describe(error: unknown): string {
  if (error instanceof SessionApiError) return error.detail;
  if (error instanceof BroadcastClientError || error instanceof Error) return error.message;
  return String(error);
}

export const CONNECTION_WORDS: Record<ConnectionState, string> = {
  connecting: "connecting", open: "connected", reconnecting: "reconnecting", ended: "closed (session ended)",
  closed: "closed", failed: "closed (failed)",
};

/** Keeps the page's Status and Listeners facts up to date from the server's messages. */
export function showStatus(message: ServerMessage): void {
  if (message.type === "status") {
    if (typeof message.status === "string") text("status", message.status);
    if (typeof message.listenerCount === "number") text("listener-count", message.listenerCount);
  } else if (message.type === "sessionEnded") {
    text("status", "ended");
  }
}

/** The service's own session ID pattern (layers/session_core/session_core/session_ids.py). */
export const SESSION_ID = /^[a-z]{2,20}-[a-z]{2,20}-[0-9]{3}$/;

/** Wires a sign-in form to a CognitoAuth; calls `signedIn` once it succeeds. */
export function signInForm(config: ConsoleConfig, auth: CognitoAuth, signedIn: () => void): void {
  if (config.localUsers?.length) {
    const hint = document.getElementById("local-users");
    if (hint) {
      hint.textContent = `Local stack users: ${config.localUsers.join(", ")} (their passwords are in the make dev banner).`;
    }
  }
  byId<HTMLFormElement>("sign-in-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = byId<HTMLButtonElement>("sign-in");
    button.disabled = true;
    try {
      await auth.signIn(byId<HTMLInputElement>("username").value.trim(), byId<HTMLInputElement>("password").value);
      byId<HTMLInputElement>("password").value = "";
      notice(`Signed in as ${auth.username}.`);
      signedIn();
    } catch (error) {
      notice(describe(error), "error");
    } finally {
      button.disabled = false;
    }
  });
}

/** The page's configuration and a CognitoAuth for its user pool; without a configuration the page says so and stops. */
export async function openConsole(): Promise<{ config: ConsoleConfig; auth: CognitoAuth }> {
  const config = await loadConfig().catch((error: unknown) => {
    notice(`The console has no configuration: ${describe(error)}`, "error");
    throw error;
  });
  const auth = new CognitoAuth({ clientId: config.userPoolClientId, region: config.region,
    endpoint: config.cognitoEndpoint });
  return { config, auth };
}
