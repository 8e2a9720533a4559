/** The session resource (docs/openapi.yaml) and the values the API accepts. */

export const LANGUAGES = ["en", "es", "fr", "de", "it", "pt", "ru", "ja", "ko", "zh", "ar", "hi", "nl", "pl", "tr",
  "sv", "da", "no", "fi"] as const;
export const QUALITY_TIERS = ["standard", "premium"] as const;

export type QualityTier = (typeof QUALITY_TIERS)[number];
export type SessionStatus = "active" | "paused" | "ended";
export type Role = "speaker" | "listener";
/** link: anonymous listeners need the session's join key (its listener link carries it); public: its ID is enough. */
export type Access = "link" | "public";

/** Times are epoch seconds. */
export interface Session {
  sessionId: string;
  speakerId: string;
  sourceLanguage: string;
  qualityTier: QualityTier;
  status: SessionStatus;
  listenerCount: number;
  version: number;
  createdAt: number;
  updatedAt: number;
  expiresAt: number;
  endedAt?: number;
  resumedAt?: number;
  /** The transcription pipeline's partial-results settings (sessions stored before them read back with defaults). */
  partialResultsEnabled?: boolean;
  minStabilityThreshold?: number;
  maxBufferTimeout?: number;
  /** Absent from a server that predates access. */
  access?: Access;
  /** A link session's key: in the answers to its speaker only. */
  joinKey?: string;
}

/** The body as a Session, or undefined when it is not one. */
export function asSession(body: unknown): Session | undefined {
  if (typeof body !== "object" || body === null) return undefined;
  const s = body as Record<string, unknown>;
  const strings = ["sessionId", "speakerId", "sourceLanguage", "qualityTier", "status"];
  const numbers = ["listenerCount", "version", "createdAt", "updatedAt", "expiresAt"];
  if (strings.some((k) => typeof s[k] !== "string") || numbers.some((k) => typeof s[k] !== "number")) return undefined;
  return s as unknown as Session;
}
