// The REST API, with the console's token. Errors carry the server's message.
//
// In a browser the console is served by the server itself (same origin). In the desktop app it
// is loaded from the app and the app injects `window.__WATCHFLOOR__ = { api, token }`: the
// embedded server's address and a fresh console token.

type Injected = { api?: string; token?: string };
const injected: Injected = (globalThis as { __WATCHFLOOR__?: Injected }).__WATCHFLOOR__ ?? {};

/** The API's origin ('' = this page's). */
export const API_BASE = (injected.api ?? '').replace(/\/$/, '');

/** The token the desktop app handed over, if any. */
export const INJECTED_TOKEN = injected.token ?? null;

/** The live feed's WebSocket URL for a path. */
export function wsUrl(path: string): string {
  if (API_BASE) return API_BASE.replace(/^http/, 'ws') + path;
  const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${proto}//${location.host}${path}`;
}

export class ApiError extends Error {
  constructor(public status: number, message: string) {
    super(message);
  }
}

const TOKEN_KEY = 'watchfloor.token';

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(t: string | null) {
  if (t) sessionStorage.setItem(TOKEN_KEY, t);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** Calls the API; throws ApiError with the server's `error` text on a non-2xx answer. */
export async function api<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = {};
  const token = getToken();
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const r = await fetch(API_BASE + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await r.text();
  let data: unknown = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!r.ok) {
    const msg = (data && typeof data === 'object' && 'error' in data) ? String((data as { error: unknown }).error) : `${r.status} ${r.statusText}`;
    throw new ApiError(r.status, msg);
  }
  return data as T;
}

/** Incident types known to the server (APCO codes with text). */
export type IncidentTypeInfo = { code: string; text: string; priority: string; discipline: string };
