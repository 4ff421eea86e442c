// The JSON API (docs/api.md). The session token lives only in the HttpOnly cookie that
// log-in sets: this code never sees it, so a script injected into the page could not
// steal it either, and nothing secret is kept in localStorage.

const BASE = '/api/v1';

/** An API failure with the server's stable `code` (or `network` when no answer came). */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

/**
 * Calls the API and returns the parsed body (null for 204). Throws `ApiError`, with the
 * server's message, which is written to be shown to people.
 */
export async function api(method, path, body, { raw = null } = {}) {
  const init = { method, credentials: 'same-origin', headers: {} };
  if (raw) {
    init.body = raw;
  } else if (body !== undefined) {
    init.headers['content-type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(BASE + path, init);
  } catch {
    throw new ApiError(0, 'network', 'The server cannot be reached. Check your connection and try again.');
  }
  if (res.status === 204) return null;
  const data = await res.json().catch(() => null);
  if (!res.ok) {
    const error = data?.error;
    throw new ApiError(res.status, error?.code ?? 'internal', error?.message ?? `The server answered ${res.status}.`);
  }
  return data;
}

/** The signed-in user `{id, name, kind, role}`, or null when there is no valid session. */
export async function currentUser() {
  try {
    return (await api('GET', '/session')).user;
  } catch (e) {
    if (e.status === 401) return null;
    throw e;
  }
}

/**
 * Sends the user to the log-in page, to come back here afterwards, fragment included (an
 * invite link carries its token there).
 */
export function toLogin(reason = '') {
  const next = location.pathname + location.search + location.hash;
  const params = new URLSearchParams({ next });
  if (reason) params.set('reason', reason);
  location.replace(`/login.html?${params}`);
}

/** Only same-site paths are followed after log-in, so a crafted link cannot send people elsewhere. */
export function safeNext(value) {
  return typeof value === 'string' && value.startsWith('/') && !value.startsWith('//') && !value.startsWith('/\\')
    ? value : '/';
}

/** Uploads a file as the raw request body (the server sniffs its type). */
export const upload = (file) => api('POST', '/uploads', undefined, { raw: file });

export const enc = encodeURIComponent;
