/**
 * Every error the client throws; `instanceof BroadcastClientError` catches them all.
 * The classes and codes are those of the Python client (client/broadcast_client/errors.py).
 * Messages are sentences a person can read; tokens and passwords never appear in them.
 */

export class BroadcastClientError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** The client is missing a URL, a client ID, a session ID... */
export class ConfigurationError extends BroadcastClientError {}

/** Cognito refused to sign the user in (wrong password, unknown user, challenge required). */
export class AuthenticationFailed extends BroadcastClientError {}

/** The service (or Cognito) could not be reached. */
export class NetworkUnavailable extends BroadcastClientError {}

/** The service is unreachable, so the operation was queued; `operation.result` settles once it is replayed. */
export class OperationQueued<T = unknown> extends NetworkUnavailable {
  constructor(readonly operation: PendingOperationView<T>, pending: number) {
    super(`The session service is unreachable; '${operation.description}' is queued (${pending} operation(s) ` +
      `waiting) and will be sent when it can be reached.`);
  }
}

/** What OperationQueued exposes of a queued operation. */
export interface PendingOperationView<T> {
  readonly description: string;
  readonly idempotencyKey: string | undefined;
  readonly done: boolean;
  readonly result: Promise<T>;
  cancel(): boolean;
}

/** The service is unreachable and the offline queue is full; the operation was NOT queued. */
export class QueueFull extends NetworkUnavailable {}

// ------------------------------------------------------------------- HTTP API

/** The session API answered with an error: status, machine-readable code, message and request ID. */
export class SessionApiError extends BroadcastClientError {
  constructor(
    readonly status: number,
    readonly code: string,
    readonly detail: string,
    readonly requestId: string | undefined = undefined,
    readonly retryAfter: number | undefined = undefined,
  ) {
    super(`${detail} (HTTP ${status} ${code}${requestId ? `, request ID ${requestId}` : ""})`);
  }
}

/** 400: the request was not valid (VALIDATION_ERROR, INVALID_SESSION_ID, ...). */
export class ValidationFailed extends SessionApiError {}
/** 401: the token is missing, expired or issued for another stack, even after a refresh. */
export class Unauthorized extends SessionApiError {}
/** 403: only the session's speaker may do this. */
export class Forbidden extends SessionApiError {}
/** 404: no such session, or it has expired. */
export class NotFound extends SessionApiError {}
/** 409: the session has ended, or changed since the version given in If-Match. */
export class Conflict extends SessionApiError {}
/** 409 SESSION_ENDED: an ended session can no longer change. */
export class SessionEnded extends Conflict {}
/** 409 VERSION_CONFLICT: read the session again and retry with its new version. */
export class VersionConflict extends Conflict {}
/** 5xx: the service could not complete the request, even after retries. */
export class ServiceUnavailable extends SessionApiError {}
/** 429: too many requests, even after retries (see `retryAfter`). */
export class RateLimited extends ServiceUnavailable {}

type ApiErrorClass = new (status: number, code: string, detail: string, requestId?: string,
  retryAfter?: number) => SessionApiError;

/** 429 SESSION_LIMIT_REACHED: the user holds as many live sessions as the service allows; not retried (unlike
 * API Gateway's throttling 429): end a session first. */
export class SessionLimitReached extends SessionApiError {}

const BY_CODE: Record<string, ApiErrorClass> = {
  SESSION_ENDED: SessionEnded, VERSION_CONFLICT: VersionConflict, SESSION_LIMIT_REACHED: SessionLimitReached,
};
const BY_STATUS: Record<number, ApiErrorClass> = {
  400: ValidationFailed, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 429: RateLimited,
};
// API Gateway answers these with a bare {"message": ...}; say what they mean.
const GATEWAY_MESSAGES: Record<number, string> = {
  401: "The token was refused: it is missing, expired or issued for another stack.",
  429: "Too many requests; slow down and retry later.",
};
const GATEWAY_CODES: Record<number, string> = { 401: "UNAUTHORIZED", 429: "TOO_MANY_REQUESTS" };

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** The typed error for an error response: the service's {"error": {...}} body, API Gateway's {"message"}, or anything. */
export function apiError(status: number, body: unknown, requestId?: string, retryAfter?: number): SessionApiError {
  let code = "";
  let message = "";
  const error = isObject(body) ? body.error : undefined;
  if (isObject(error)) {
    code = typeof error.code === "string" ? error.code : "";
    message = typeof error.message === "string" ? error.message : "";
    if (typeof error.requestId === "string" && error.requestId) requestId = error.requestId;
  } else if (isObject(body) && typeof body.message === "string") {
    message = body.message;
  }
  code = code || GATEWAY_CODES[status] || `HTTP_${status}`;
  if (status in GATEWAY_MESSAGES && !isObject(error)) message = GATEWAY_MESSAGES[status]!;
  message = message || `The session service answered HTTP ${status}.`;
  const cls = BY_CODE[code] ?? BY_STATUS[status] ?? (status >= 500 ? ServiceUnavailable : SessionApiError);
  return new cls(status, code, message, requestId || undefined, retryAfter);
}

// ------------------------------------------------------------------ WebSocket

/** The live connection failed and will not recover by itself. */
export class WebSocketError extends BroadcastClientError {}

/**
 * The server refused the connection: a failed handshake or a close with code 1008.
 * Retrying with the same parameters cannot help.
 */
export class PolicyViolation extends WebSocketError {
  constructor(message: string, readonly closeCode?: number) {
    super(message);
  }
}

/** Another connection of the same speaker took the session over; this one stops rather than fight it. */
export class SpeakerReplaced extends WebSocketError {}

/** The connection dropped and every reconnection attempt failed. */
export class ConnectionLost extends WebSocketError {}

/** Too much audio is waiting for a connection; the chunk was NOT queued. */
export class BufferFull extends WebSocketError {}

/** The client was closed or the session ended; nothing more can be sent. */
export class StreamClosed extends WebSocketError {}
