// The server's validation rules (services/chat-domain/src/{names,account,message}.rs,
// docs/protocol.md §7), checked here first so that people learn why a value is refused as
// they type, without a round trip. The server checks again: these only explain.

const CONTROL = /[\u0000-\u001f\u007f-\u009f]/u;
const BIDI = /[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]/u;
const TEXT_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/u;
const BIO_CONTROL = /[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/u;
const chars = (s) => [...s].length;

/** Room names: whitespace is not trimmed and case does not matter. */
export function roomNameError(s) {
  if (s === '') return 'Enter a room name.';
  if (new TextEncoder().encode(s).length > 64) return 'A room name is at most 64 characters.';
  if (!/^[a-z0-9]/i.test(s)) return 'A room name must start with a letter or a digit.';
  if (!/^[a-z0-9_.-]+$/i.test(s)) {
    return "A room name may only hold letters a–z, digits, '_', '.' and '-' (no spaces).";
  }
  return null;
}

/** A private room's name, which the server keeps as its title: any text of 1 to 64 characters. */
export function roomTitleError(input) {
  const s = input.trim();
  if (s === '') return 'Enter a name for the room.';
  if (chars(s) > 64) return 'A private room’s name is at most 64 characters.';
  if (CONTROL.test(s)) return 'A room name cannot hold control characters.';
  return null;
}

/** Names the server reserves for private rooms (`p.…`) and direct messages (`dm.…`). */
export const isReservedRoom = (name) => /^(p|dm)\./i.test(name);

export function displayNameError(input) {
  const s = input.trim();
  if (s === '') return 'Enter a name.';
  if (chars(s) > 32) return 'A name is at most 32 characters.';
  if (CONTROL.test(s)) return 'A name cannot hold control characters.';
  return null;
}

export function usernameError(input) {
  const s = input.trim();
  if (s.length < 3 || s.length > 32) return 'A username is 3 to 32 characters.';
  if (!/^[A-Za-z]/.test(s)) return 'A username must start with a letter.';
  if (!/^[A-Za-z0-9_]+$/.test(s)) return "A username may only hold letters, digits and '_'.";
  return null;
}

export function passwordError(password, username = '') {
  const n = chars(password);
  if (n < 10) return 'A password needs at least 10 characters.';
  if (n > 256) return 'A password is at most 256 characters.';
  const key = username.trim().toLowerCase();
  if (key && password.toLowerCase().includes(key)) return 'The password must not contain your username.';
  return null;
}

export function emailError(input) {
  const s = input.trim();
  if (s === '' || new TextEncoder().encode(s).length > 254) return 'Enter an e-mail address (at most 254 characters).';
  const at = s.indexOf('@');
  const local = s.slice(0, at), domain = s.slice(at + 1);
  const shaped = at > 0 && !domain.includes('@') && domain.includes('.') && !domain.startsWith('.') && !domain.endsWith('.');
  if (!shaped || /[\s]/u.test(s) || CONTROL.test(s) || !local) return 'Enter an address like name@example.com.';
  return null;
}

export function personNameError(input, what = 'A name') {
  const s = input.trim();
  if (s === '' || chars(s) > 64) return `${what} is 1 to 64 characters.`;
  if (CONTROL.test(s) || BIDI.test(s)) return `${what} cannot hold control or text-direction characters.`;
  return null;
}

export function bioError(input) {
  const s = input.trim();
  if (chars(s) > 255) return `The bio is ${chars(s)} characters; the limit is 255.`;
  if (BIO_CONTROL.test(s) || BIDI.test(s)) return 'The bio cannot hold control or text-direction characters.';
  return null;
}

/** A message's text; `caption` allows it to be empty (an image's caption). */
export function textError(s, { caption = false } = {}) {
  if (!caption && s.trim() === '') return 'The message is empty.';
  const n = chars(s);
  if (n > 4000) return `The message is ${n} characters long; the limit is 4000.`;
  if (TEXT_CONTROL.test(s)) return 'The message holds control characters.';
  return null;
}

/** The upload types the server accepts (it sniffs the bytes; this only saves a round trip). */
export const IMAGE_TYPES = ['image/png', 'image/jpeg', 'image/gif', 'image/webp'];
