// The service worker: keeps a copy of the app's shell (its pages, style, scripts, icons) so
// that the app opens without a network and shows its own offline state ("The server cannot
// be reached. Retrying…", then reconnecting) rather than the browser's error page.
//
// Three rules, each for a reason:
// * Nothing under /api/ or /ws is touched: those are a person's private data (messages,
//   uploads, sessions) and the live socket. They pass to the network as if there were no
//   worker, and never enter a cache. Everything else on this origin is the public static
//   site (services/gateway/src/router.rs), and only that is kept.
// * The network first, always: an online browser gets the current file of each request
//   (the server makes it revalidate, `no-cache`), so a deploy never leaves old scripts under
//   new pages. The copy is only for when the network fails, and each answer from the
//   network replaces it.
// * The cache's name carries VERSION: a new worker fills its own cache with the whole shell
//   at install, and drops the older ones once it takes over, so that the offline copy is of
//   one deploy. Change VERSION (or SHELL) whenever the set of files changes; any change to
//   this file is a new worker, which the pages pick up at their next load.

const VERSION = 'v1';
const CACHE = `sc-shell-${VERSION}`;

/**
 * Every file of the shell (browser-tests/tests/72-notifications-install checks that this
 * names each file in static/). `/` is the panel, as the server answers it.
 */
const SHELL = [
  '/', '/index.html', '/room.html', '/login.html', '/signup.html', '/forgot.html', '/reset.html',
  '/invite.html', '/profile.html', '/admin.html', '/404.html',
  '/style.css', '/favicon.svg', '/manifest.webmanifest',
  '/icons/app.svg', '/icons/app-maskable.svg', '/icons/bell.svg', '/icons/bell-off.svg',
  '/icons/image.svg', '/icons/lock.svg',
  '/js/admin.js', '/js/api.js', '/js/change-password.js', '/js/connection.js', '/js/directory.js',
  '/js/dom.js', '/js/forgot.js', '/js/format.js', '/js/invite.js', '/js/login.js',
  '/js/notifications.js', '/js/outbox.js', '/js/panel.js', '/js/passwords.js', '/js/presence.js',
  '/js/profile.js', '/js/receipts.js', '/js/reset.js', '/js/room.js', '/js/roomlist.js',
  '/js/rules.js', '/js/search.js', '/js/shell.js', '/js/signup.js', '/js/sw-register.js',
  '/js/timeline.js', '/js/typing.js',
];

/** Private, or not a file: never answered by this worker, never cached. */
const isPrivate = (url) => url.pathname.startsWith('/api/') || url.pathname === '/api'
  || url.pathname === '/ws' || url.pathname.startsWith('/ws/');

self.addEventListener('install', (event) => {
  // Each file on its own: one that is missing (a deploy that removed it) leaves the others
  // kept, rather than failing the install and leaving no copy at all. `cache: 'reload'`
  // skips the browser's HTTP cache, so that the copy is this deploy's.
  event.waitUntil((async () => {
    const cache = await caches.open(CACHE);
    await Promise.allSettled(SHELL.map(async (path) => {
      const response = await fetch(new Request(path, { cache: 'reload' }));
      if (keepable(response)) await cache.put(path, response);
    }));
    // The new worker takes over at once: it answers from the network first, so a page
    // loaded under the old one loses nothing by it.
    await self.skipWaiting();
  })());
});

self.addEventListener('activate', (event) => {
  event.waitUntil((async () => {
    for (const name of await caches.keys()) {
      if (name.startsWith('sc-shell-') && name !== CACHE) await caches.delete(name);
    }
    await self.clients.claim();
  })());
});

self.addEventListener('fetch', (event) => {
  const { request } = event;
  if (request.method !== 'GET') return;
  const url = new URL(request.url);
  if (url.origin !== self.location.origin || isPrivate(url)) return; // to the network, untouched
  event.respondWith(networkFirst(event, url));
});

/**
 * The network's answer, kept for later; the kept copy only when the network fails. A page
 * is kept under its path without the query (`/room.html?name=lobby` is `/room.html`):
 * the query is read by the page's script, not by the server.
 */
async function networkFirst(event, url) {
  const key = url.pathname;
  try {
    const response = await fetch(event.request);
    if (keepable(response)) {
      const copy = response.clone();
      event.waitUntil(caches.open(CACHE).then((cache) => cache.put(key, copy)).catch(() => {}));
    }
    return response;
  } catch (error) {
    const kept = await caches.match(key, { cacheName: CACHE });
    if (kept) return kept;
    throw error; // not kept either: the browser shows the failure as it would without us
  }
}

/** Only whole, successful, unredirected answers of our own, that the server lets be stored. */
function keepable(response) {
  return response.ok && response.status === 200 && response.type === 'basic' && !response.redirected
    && !/no-store/i.test(response.headers.get('cache-control') ?? '');
}
