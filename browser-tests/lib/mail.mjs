// The mail the cluster sent, as the tests read it: scripts/browser-test.sh runs a real SMTP
// server (scripts/smtp-sink.sh) for the gateways, which writes each mail it accepts as one
// file under $MAIL_DIR/new/ (a Maildir). The mail is parsed only as far as finding a link
// needs: headers, MIME parts, and their transfer encodings.

import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { waitFor } from './harness.mjs';

function mailDir() {
  const dir = process.env.MAIL_DIR;
  if (!dir) throw new Error('MAIL_DIR is not set: run the tests with scripts/browser-test.sh');
  return dir;
}

/** Splits a message (or a MIME part) into its headers, by lowercase name (folded lines joined), and its body. */
function parse(raw) {
  const cut = /\r?\n\r?\n/.exec(raw);
  const head = cut ? raw.slice(0, cut.index) : raw;
  const body = cut ? raw.slice(cut.index + cut[0].length) : '';
  const headers = new Map();
  for (const line of head.replace(/\r?\n[ \t]+/g, ' ').split(/\r?\n/)) {
    const colon = line.indexOf(':');
    const name = line.slice(0, colon).trim().toLowerCase();
    if (colon > 0 && !headers.has(name)) headers.set(name, line.slice(colon + 1).trim());
  }
  return { headers, body };
}

/**
 * Quoted-printable to text: `=` at a line's end is a soft break (the line goes on), `=XX`
 * is a byte (`=3D` is `=` itself), and the bytes are UTF-8.
 */
export function decodeQuotedPrintable(text) {
  const soft = text.replace(/=\r?\n/g, '');
  const chunks = [];
  for (const [token, hex] of soft.matchAll(/=([0-9A-Fa-f]{2})|[^=]+|=/g)) {
    chunks.push(hex ? Buffer.from([parseInt(hex, 16)]) : Buffer.from(token, 'utf8'));
  }
  return Buffer.concat(chunks).toString('utf8');
}

function decode(body, encoding = '') {
  switch (encoding.trim().toLowerCase()) {
    case 'quoted-printable': return decodeQuotedPrintable(body);
    case 'base64': return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
    default: return body; // 7bit, 8bit: as it is
  }
}

/** The decoded text of every leaf part of a message, nested multiparts included. */
function texts(raw) {
  const { headers, body } = parse(raw);
  const boundary = /boundary="?([^";]+)"?/i.exec(headers.get('content-type') ?? '')?.[1];
  if (!boundary) return [decode(body, headers.get('content-transfer-encoding'))];
  return body.split(`--${boundary}`).slice(1)
    .filter((part) => !part.startsWith('--')) // the closing delimiter
    .flatMap((part) => texts(part.replace(/^[ \t]*\r?\n/, '')));
}

/**
 * The newest mail whose `To:` names `address`, as `{ file, headers, texts }`, waiting up to
 * `timeout` ms for one to arrive: the server sends after it has answered, on its own time.
 */
export async function mailTo(address, { timeout = 20_000 } = {}) {
  const dir = path.join(mailDir(), 'new');
  const want = address.toLowerCase();
  return waitFor(() => {
    const newestFirst = readdirSync(dir)
      .map((name) => ({ name, at: statSync(path.join(dir, name)).mtimeMs }))
      .sort((a, b) => b.at - a.at);
    for (const { name } of newestFirst) {
      const raw = readFileSync(path.join(dir, name), 'utf8');
      const { headers } = parse(raw);
      const to = (headers.get('to') ?? '').toLowerCase().match(/[^\s<>,;"]+@[^\s<>,;"]+/g) ?? [];
      if (to.includes(want)) return { file: name, headers, texts: texts(raw) };
    }
    return null;
  }, { timeout, interval: 200, message: `a mail to ${address} in ${dir}` });
}

/** The first link in a mail's texts that opens `page` (`/reset.html`), with its query and fragment. */
export function linkIn(mail, page) {
  const escaped = page.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  for (const text of mail.texts) {
    const found = new RegExp(`https?://[^\\s"'<>]+${escaped}[^\\s"'<>]*`).exec(text);
    if (found) return found[0].replace(/&amp;/g, '&');
  }
  return null;
}
