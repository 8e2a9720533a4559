/** Backoff with full jitter, and the Retry-After header (as the Python client's retry.py). */

export interface RetryPolicy {
  /** Tries after the first one. */
  readonly maxRetries: number;
  /** Seconds; the wait before retry n (0-based) is uniform in [0, min(maxDelay, baseDelay * 2**n)]. */
  readonly baseDelay: number;
  readonly maxDelay: number;
  /** A server's Retry-After is obeyed up to this many seconds; a longer one is returned with the error. */
  readonly maxRetryAfter: number;
}

export const DEFAULT_RETRY: RetryPolicy = { maxRetries: 3, baseDelay: 0.5, maxDelay: 10, maxRetryAfter: 60 };

/** Seconds to wait before retry `retry` (0-based): "full jitter", so clients failing together do not return together. */
export function backoff(policy: RetryPolicy, retry: number, random: () => number): number {
  return random() * Math.min(policy.maxDelay, policy.baseDelay * 2 ** retry);
}

/** Seconds to wait from a Retry-After header (delay-seconds or HTTP-date), or undefined. `now` in ms. */
export function parseRetryAfter(value: string | null | undefined, now: number): number | undefined {
  if (!value) return undefined;
  const text = value.trim();
  if (/^\d+(\.\d+)?$/.test(text)) return Math.max(0, Number(text));
  if (!/GMT$/.test(text)) return undefined; // HTTP dates are GMT; a zone-less one is not one
  const when = Date.parse(text);
  return Number.isNaN(when) ? undefined : Math.max(0, (when - now) / 1000);
}

export const sleep = (seconds: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, seconds * 1000));
