// What tells a person there is news while they look elsewhere: the unread count in the
// tab's title, a short sound, and word between this browser's tabs that a room was read.
// Desktop notifications themselves are shell.js's. A leaf module (it imports nothing of
// ours), so that the room list and the shell can both use it without an import cycle.

// ---------- the tab's title ----------

let baseTitle = document.title;
let unreadCount = 0;

function applyTitle() {
  document.title = unreadCount > 0 ? `(${unreadCount}) ${baseTitle}` : baseTitle;
}

/** Sets the page's own title; the unread count, if any, stays in front of it. */
export function setPageTitle(title) {
  baseTitle = title;
  applyTitle();
}

/**
 * The person's unread messages, over their rooms that are not muted and not open on this
 * page, as "(3) " in front of the title: what a tab in the background shows of news.
 */
export function showUnread(count) {
  unreadCount = Math.max(0, count | 0);
  applyTitle();
}

// ---------- word between tabs ----------

// A room read in one tab is still counted by this browser's other tabs: their sockets have
// not joined it, so they get `notify` for what is read there, and nothing says it was read.
// The tab that reads says so here; the server keeps the record (the panel), which the other
// tabs read again when they are shown (roomlist.js), for rooms read on other devices.
const readChannel = typeof BroadcastChannel === 'function' ? new BroadcastChannel('sc-read') : null;

/** Tells this browser's other tabs that `room` is read up to `seq`. */
export function tellRead(room, seq) {
  try { readChannel?.postMessage({ room, seq }); } catch { /* a closing page: nothing to tell */ }
}

/** Calls `fn({ room, seq })` when another tab of this browser read a room. */
export function onReadElsewhere(fn) {
  readChannel?.addEventListener('message', (e) => {
    const { room, seq } = e.data ?? {};
    if (typeof room === 'string' && Number.isSafeInteger(seq)) fn({ room, seq });
  });
}

// ---------- the sound ----------

const SOUND_KEY = 'sc.sound';

/**
 * Whether a new message in a room that is not open plays a sound. On unless the person
 * turned it off, as in the chat apps people know; a setting of this browser, not of the
 * account (a laptop in a meeting, a phone at home).
 */
export function soundOn() {
  try { return localStorage.getItem(SOUND_KEY) !== 'off'; } catch { return true; }
}

export function setSoundOn(on) {
  try { localStorage.setItem(SOUND_KEY, on ? 'on' : 'off'); } catch { /* storage switched off: for this page only */ }
  soundEnabled = on;
}

let soundEnabled = soundOn();
// Another tab changed the setting: this one follows.
window.addEventListener('storage', (e) => { if (e.key === SOUND_KEY || e.key === null) soundEnabled = soundOn(); });

/** A burst of messages plays one sound, not one each; a mention always plays. */
const QUIET_AFTER_MS = 2000;
let lastPlayedAt = -Infinity;
let audio = null;

/**
 * Two short notes, made here with the Web Audio API (no file to fetch): a soft falling pair
 * for a message, a brighter rising pair for a mention. Each played sound is counted on the
 * root element (`data-sounds`, and `data-last-sound` says which), which the browser tests
 * read rather than listen.
 *
 * `key` (the room and seq) makes the same message sound once however many tabs got it: the
 * first tab to play it writes it down, and the others see it is done.
 */
export function playSound(kind, key) {
  if (!soundEnabled) return;
  // Browsers let a page start audio only once the person has interacted with it; before
  // that, trying only logs a warning.
  if (navigator.userActivation && !navigator.userActivation.hasBeenActive) return;
  const now = performance.now();
  if (kind !== 'mention' && now - lastPlayedAt < QUIET_AFTER_MS) return;
  if (key && !claimSound(key)) return;
  const Context = window.AudioContext ?? window.webkitAudioContext;
  if (!Context) return;
  try {
    audio ??= new Context();
    if (audio.state === 'suspended') audio.resume().catch(() => {});
    const notes = kind === 'mention' ? [660, 990] : [880, 660];
    const start = audio.currentTime + 0.01;
    notes.forEach((frequency, i) => tone(audio, frequency, start + i * 0.12, 0.16));
  } catch {
    return; // no audio device, or audio refused: the badge and the title still say it
  }
  lastPlayedAt = now;
  const root = document.documentElement;
  root.dataset.sounds = String(Number(root.dataset.sounds ?? 0) + 1);
  root.dataset.lastSound = kind;
}

/** One note: a sine that fades in and out quickly, so that it does not click. */
function tone(context, frequency, at, length) {
  const osc = context.createOscillator();
  const gain = context.createGain();
  osc.type = 'sine';
  osc.frequency.setValueAtTime(frequency, at);
  gain.gain.setValueAtTime(0.0001, at);
  gain.gain.exponentialRampToValueAtTime(0.15, at + 0.02);
  gain.gain.exponentialRampToValueAtTime(0.0001, at + length);
  osc.connect(gain).connect(context.destination);
  osc.start(at);
  osc.stop(at + length + 0.02);
}

const PLAYED_KEY = 'sc.sound-played';

/** True for the first tab of this browser to claim `key` (the last few are kept). */
function claimSound(key) {
  try {
    const played = JSON.parse(localStorage.getItem(PLAYED_KEY) ?? '[]');
    if (Array.isArray(played) && played.includes(key)) return false;
    localStorage.setItem(PLAYED_KEY, JSON.stringify([key, ...(Array.isArray(played) ? played : [])].slice(0, 20)));
  } catch { /* storage switched off: each tab plays its own */ }
  return true;
}
