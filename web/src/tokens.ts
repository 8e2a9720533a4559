/**
 * Where bearer tokens come from, and keeping them fresh (as the Python client's auth.py).
 * TokenManager asks the provider for a new token shortly before the current one expires (`exp` read
 * from the JWT, not verified: the server verifies) and once after the server rejected it.
 */

export interface TokenProvider {
  /** The current token (signing in first if needed). */
  token(): Promise<string>;
  /** A new token: the current one is about to expire or was rejected. */
  refresh(): Promise<string>;
}

/** Refresh this many seconds before exp, so a request never leaves with a token that expires on the way. */
export const DEFAULT_REFRESH_MARGIN = 60;

/** A token obtained elsewhere. It cannot be refreshed: a 401 is final. */
export class StaticTokenProvider implements TokenProvider {
  constructor(private readonly value: string) {
    if (!value) throw new TypeError("token must not be empty");
  }
  async token(): Promise<string> {
    return this.value;
  }
  async refresh(): Promise<string> {
    return this.value;
  }
}

function base64UrlDecode(text: string): string {
  const base64 = text.replace(/-/g, "+").replace(/_/g, "/") + "=".repeat((4 - (text.length % 4)) % 4);
  return atob(base64);
}

/** The `exp` claim of a JWT (epoch seconds), or undefined for anything else. */
export function jwtExpiry(token: string): number | undefined {
  const parts = token.split(".");
  if (parts.length !== 3) return undefined;
  try {
    const payload: unknown = JSON.parse(base64UrlDecode(parts[1]!));
    const exp = (payload as { exp?: unknown } | null)?.exp;
    return typeof exp === "number" && Number.isFinite(exp) ? exp : undefined;
  } catch {
    return undefined;
  }
}

/** The token to send now: cached, refreshed before expiry and after a rejection; callers share one refresh. */
export class TokenManager {
  private current: string | undefined;
  private lock: Promise<unknown> = Promise.resolve();

  constructor(
    readonly provider: TokenProvider,
    private readonly now: () => number = Date.now,
    private readonly refreshMargin: number = DEFAULT_REFRESH_MARGIN,
  ) {}

  get(): Promise<string> {
    return this.exclusive(async () => {
      this.current ??= await this.provider.token();
      const expiry = jwtExpiry(this.current);
      if (expiry !== undefined && expiry - this.now() / 1000 <= this.refreshMargin) {
        this.current = await this.provider.refresh();
      }
      return this.current;
    });
  }

  /** A different token to retry with after `token` was refused, or undefined if there is none. */
  rejected(token: string): Promise<string | undefined> {
    return this.exclusive(async () => {
      if (this.current !== token) return this.current;
      this.current = await this.provider.refresh();
      return this.current === token ? undefined : this.current;
    });
  }

  private exclusive<T>(work: () => Promise<T>): Promise<T> {
    const result = this.lock.then(work);
    this.lock = result.catch(() => undefined);
    return result;
  }
}
