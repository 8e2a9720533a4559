/** The browser client of the broadcast session service. */
export * from "./errors.js";
export { DEFAULT_RETRY, backoff, parseRetryAfter, type RetryPolicy } from "./retry.js";
export { DEFAULT_REFRESH_MARGIN, StaticTokenProvider, TokenManager, jwtExpiry, type TokenProvider } from "./tokens.js";
export { CognitoAuth, type CognitoAuthOptions } from "./cognito.js";
export { ENV_NAMES, checkConfig, configFromEnv, type BroadcastConfig } from "./config.js";
export { LANGUAGES, QUALITY_TIERS, type Access, type QualityTier, type Role, type Session, type SessionStatus } from "./models.js";
export { RETRYABLE_STATUSES, SessionHttpService, type SessionHttpServiceOptions } from "./http.js";
export {
  DEFAULT_ACK_TIMEOUT,
  DEFAULT_HEARTBEAT_INTERVAL,
  DEFAULT_MAX_CONNECTION_AGE,
  DEFAULT_RECONNECT,
  MAX_FRAME_BYTES,
  WebSocketClient,
  base64Encode,
  probeHost,
  type ConnectionState,
  type ServerMessage,
  type WebSocketClientOptions,
} from "./websocket.js";
export { CHUNK_BYTES, CHUNK_MS, CHUNK_SAMPLES, Pcm16Encoder, SAMPLE_RATE, toInt16 } from "./audio.js";
export {
  DEFAULT_JITTER_QUANTILE,
  DEFAULT_MAX_DELAY,
  DEFAULT_MIN_DELAY,
  DEFAULT_TARGET_DELAY,
  JitterBuffer,
  PcmPlayer,
  base64Decode,
  cutQuiet,
  pcm16ToFloat,
  type JitterBufferOptions,
  type PcmPlayerOptions,
  type PlaybackContext,
  type PlayedChunk,
} from "./player.js";
export { LIVE_STATE_WORDS, SESSION_ID, liveState, readSessionId, type LiveState, type SessionIdReading } from "./states.js";
