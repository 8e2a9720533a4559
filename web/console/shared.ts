/** What both pages share: configuration, sign-in, small DOM helpers, and errors in words. */
import {
  type BroadcastConfig,
  BroadcastClientError,
  checkConfig,
  CognitoAuth,
  configFromEnv,
  type ConnectionState,
  LIVE_STATE_WORDS,
  liveState,
  type LiveState,
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

/**
 * Keeps the page's Status and Listeners facts up to date from the server's messages, and announces
 * their changes.
 */
export function showStatus(message: ServerMessage): LiveState | undefined {
  const state = liveState(message);
  const changes: string[] = [];
  if (state && byId("status").textContent !== LIVE_STATE_WORDS[state]) {
    text("status", LIVE_STATE_WORDS[state]);
    changes.push(`Status: ${LIVE_STATE_WORDS[state]}.`);
  }
  const count = describeCount(message);
  if (count !== undefined && byId("listener-count").textContent !== count) {
    text("listener-count", count);
    changes.push(`Listeners: ${count}.`);
  }
  if (changes.length) announce(changes.join(" "));
  return state;
}

/** Says `message` to screen readers (the page's polite live region), without moving focus. */
export function announce(message: string): void {
  const region = byId("announcer");
  // The same words twice in a row are still announced: clear first, then set on the next frame.
  region.textContent = "";
  requestAnimationFrame(() => (region.textContent = message));
}

/** Moves focus to the next useful control once it is shown and enabled. */
export function focusOn(id: string): void {
  requestAnimationFrame(() => byId(id).focus());
}

const languageNames = new Intl.DisplayNames(["en"], { type: "language" });

/** "fr" as "French (fr)": people pick names, the code stays visible for those who know it. */
export function languageName(code: string): string {
  return `${languageNames.of(code) ?? code} (${code})`;
}

/** "3 (English 1, French 2)" from a status message's counts. */
export function describeCount(message: ServerMessage): string | undefined {
  if (typeof message.listenerCount !== "number") return undefined;
  const byLanguage = message.listenersByLanguage;
  if (!byLanguage || typeof byLanguage !== "object" || !Object.keys(byLanguage).length) {
    return String(message.listenerCount);
  }
  const parts = Object.entries(byLanguage as Record<string, number>).sort()
    .map(([code, count]) => `${languageNames.of(code) ?? code} ${count}`);
  return `${message.listenerCount} (${parts.join(", ")})`;
}

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
