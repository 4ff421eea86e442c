// The JSON API (docs/api.md). The session token lives only in the HttpOnly cookie that
// log-in sets: this code never sees it, so a script injected into the page could not
// steal it either, and nothing secret is kept in localStorage.

const BASE = '/api/v1';

/**
 * An API failure with the server's stable `code` (or `network` when no answer came).
 * `retryAfter` is the wait in seconds a 429 names (its `Retry-After`), else null.
 */
export class ApiError extends Error {
  constructor(status, code, message, retryAfter = null) {
    super(message);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter;
  }
}

/** `Retry-After` in whole seconds: the server sends seconds, but the header may also be a date. */
function retryAfterOf(res) {
  const value = res.headers.get('retry-after')?.trim();
  if (!value) return null;
  if (/^\d+$/.test(value)) return Number(value);
  const at = Date.parse(value);
  return Number.isNaN(at) ? null : Math.max(0, Math.ceil((at - Date.now()) / 1000));
}

/**
 * What to tell someone the server is holding off (429 `too_many_attempts`): how long to
 * wait, from the answer itself, so they do not keep trying into a longer wait.
 */
export function retryLater(err, lead = 'Too many failed attempts.') {
  const s = err.retryAfter;
  const when = s === null || s === undefined ? 'in a little while' : `in ${s} ${s === 1 ? 'second' : 'seconds'}`;
  return `${lead} Try again ${when}.`;
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
    throw new ApiError(res.status, error?.code ?? 'internal', error?.message ?? `The server answered ${res.status}.`,
      res.status === 429 ? retryAfterOf(res) : null);
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
 * invite link carries its token there). `notice` is one of the codes login.js knows
 * (`session_ended`, `password_changed`), never text: the log-in page shows only its own
 * words, so a crafted link cannot make it say anything.
 */
export function toLogin(notice = '') {
  const next = location.pathname + location.search + location.hash;
  const params = new URLSearchParams({ next });
  if (notice) params.set('notice', notice);
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
