// A message's text as DOM nodes: http(s) links, `code`, **bold**, _italic_, > quotes and
// fenced code blocks. Built node by node with text nodes for everything typed, never as an
// HTML string, so nothing anyone sends can become markup or script; only http and https
// addresses ever become links.

import { el } from './dom.js';

const LINK_REL = 'noopener noreferrer nofollow';

// In priority order: a code span (nothing inside it is formatted), an address, bold, then
// italic. Underscores inside a word (snake_case, ann_1) are not emphasis.
const INLINE = new RegExp([
  '`(?<code>[^`\\n]+)`',
  '(?<url>\\bhttps?:\\/\\/[^\\s<>"`]+)',
  '\\*\\*(?<bold>\\S(?:[^\\n]*?\\S)?)\\*\\*',
  '(?<![\\p{L}\\p{N}_])_(?<italic>\\S(?:[^\\n]*?\\S)?)_(?![\\p{L}\\p{N}_])',
].join('|'), 'gu');

/** The nodes that show `text`: blocks (code, quotes) and formatted runs in between. */
export function formatted(text) {
  const nodes = [];
  const lines = text.split('\n');
  let plain = [];
  const flush = () => {
    if (plain.length) nodes.push(...inline(plain.join('\n')));
    plain = [];
  };
  for (let i = 0; i < lines.length;) {
    const close = lines[i].startsWith('```') ? lines.findIndex((l, j) => j > i && l.trimEnd() === '```') : -1;
    if (close !== -1) {
      flush();
      nodes.push(el('pre', {}, el('code', {}, lines.slice(i + 1, close).join('\n'))));
      i = close + 1;
    } else if (lines[i].startsWith('>')) {
      flush();
      const quoted = [];
      for (; i < lines.length && lines[i].startsWith('>'); i += 1) quoted.push(lines[i].replace(/^> ?/, ''));
      nodes.push(el('blockquote', {}, ...inline(quoted.join('\n'))));
    } else {
      plain.push(lines[i]);
      i += 1;
    }
  }
  flush();
  return nodes;
}

/** Formatted runs of one stretch of text; plain stretches stay text (strings). */
function inline(text) {
  const out = [];
  let at = 0;
  for (const m of text.matchAll(INLINE)) {
    const { code, url, bold, italic } = m.groups;
    let end = m.index + m[0].length;
    let node;
    if (code !== undefined) node = el('code', {}, code);
    else if (url !== undefined) {
      const href = trimUrl(url);
      end = m.index + href.length;
      node = link(href);
    } else if (bold !== undefined) node = el('strong', {}, ...inline(bold));
    else node = el('em', {}, ...inline(italic));
    if (m.index > at) out.push(text.slice(at, m.index));
    out.push(node);
    at = end;
  }
  if (at < text.length) out.push(text.slice(at));
  return out;
}

/** An address without the punctuation that ends the sentence around it. */
function trimUrl(url) {
  let href = url.replace(/[.,;:!?'*_]+$/u, '');
  // A closing parenthesis belongs to the address only when it opened one.
  while (href.endsWith(')') && (href.match(/\(/g)?.length ?? 0) < (href.match(/\)/g)?.length ?? 0)) {
    href = href.slice(0, -1).replace(/[.,;:!?'*_]+$/u, '');
  }
  return href;
}

/** A link that opens in a new tab; anything that is not http(s) stays text. */
function link(href) {
  let protocol;
  try { ({ protocol } = new URL(href)); } catch { return href; }
  if (protocol !== 'http:' && protocol !== 'https:') return href;
  return el('a', { href, target: '_blank', rel: LINK_REL }, href);
}
