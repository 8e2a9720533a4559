/**
 * What the server's messages say about a session, in the words a person reads: the live state
 * (docs/protocols.md "Live states") and whether a typed session ID is one.
 */
import type { ServerMessage } from "./websocket.js";

export type LiveState = "waiting" | "live" | "paused" | "muted" | "speaker-disconnected" | "ended";

export const LIVE_STATE_WORDS: Record<LiveState, string> = {
  waiting: "Waiting for the speaker", live: "Live", paused: "Paused", muted: "Muted",
  "speaker-disconnected": "Speaker disconnected", ended: "Ended",
};

/** The state a status or sessionEnded message tells, or undefined for other messages. */
export function liveState(message: ServerMessage): LiveState | undefined {
  if (message.type === "sessionEnded") return "ended";
  if (message.type !== "status") return undefined;
  if (message.status === "ended") return "ended";
  // A server without the presence field (older) is taken as having the speaker there.
  if (message.speakerConnected === false) {
    return message.speakerDisconnectedAt !== undefined ? "speaker-disconnected" : "waiting";
  }
  if (message.status === "paused") return "paused";
  if (message.muted === true) return "muted";
  return "live";
}

/** The service's session ID pattern (layers/session_core/session_core/session_ids.py). */
export const SESSION_ID = /^[a-z]{2,20}-[a-z]{2,20}-[0-9]{3}$/;

export type SessionIdReading = { sessionId: string; problem?: undefined } | { sessionId?: undefined; problem: string };

/**
 * A session ID as people type it: any case, spaces around it, spaces or dashes a phone substitutes
 * between its parts ("Ocean Lantern 615", "ocean–lantern–615"). A malformed one is explained in words.
 */
export function readSessionId(typed: string): SessionIdReading {
  const sessionId = typed.trim().toLowerCase().replace(/[\s\u2010-\u2015_]+/g, "-");
  if (SESSION_ID.test(sessionId)) return { sessionId };
  const example = "two words and a three-digit number joined by hyphens, like golden-eagle-427";
  if (!sessionId) return { problem: `Enter the session ID: ${example}.` };
  const parts = sessionId.split("-");
  if (parts.length !== 3) return { problem: `A session ID has three parts: ${example}.` };
  if (!/^[0-9]{3}$/.test(parts[2]!)) return { problem: `A session ID ends in three digits: ${example}.` };
  return { problem: `A session ID starts with two words of letters only: ${example}.` };
}
