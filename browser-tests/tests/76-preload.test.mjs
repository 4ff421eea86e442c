// Each page names every module its script imports, directly or not, as a modulepreload
// link (issue 24, speed). Without them a browser finds the modules one level of imports at
// a time, a round trip each: four levels deep on a slow phone's 150 ms is most of a second
// before the page can connect. This checks the lists against the imports themselves, so a
// new import without its link fails here rather than slowing the page unnoticed.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const STATIC = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', '..', 'static');

/** The modules `file` (a path under static/) imports, as site paths. */
function imports(file) {
  const source = readFileSync(path.join(STATIC, file), 'utf8');
  return [...source.matchAll(/(?:from|import)\s+'(\.\/[a-z0-9-]+\.js)'/g)]
    .map((m) => path.posix.join(path.posix.dirname(`/${file}`), m[1]));
}

/** Every module reachable from `entry` (a site path), itself left out. */
function closure(entry) {
  const seen = new Set();
  const walk = (module) => {
    for (const next of imports(module.slice(1))) {
      if (next !== entry && !seen.has(next)) {
        seen.add(next);
        walk(next);
      }
    }
  };
  walk(entry);
  return seen;
}

test('every page preloads exactly the modules its scripts import', () => {
  const pages = readdirSync(STATIC).filter((f) => f.endsWith('.html'));
  assert.ok(pages.length >= 10, `pages: ${pages}`);
  for (const page of pages) {
    const html = readFileSync(path.join(STATIC, page), 'utf8');
    const scripts = [...html.matchAll(/<script type="module" src="([^"]+)"><\/script>/g)].map((m) => m[1]);
    const preloaded = [...html.matchAll(/<link rel="modulepreload" href="([^"]+)">/g)].map((m) => m[1]);
    const needed = new Set(scripts.flatMap((s) => [...closure(s)]).filter((m) => !scripts.includes(m)));
    assert.deepEqual(new Set(preloaded), needed, `${page}: preloads ${preloaded.join(', ')}`);
    assert.equal(preloaded.length, new Set(preloaded).size, `${page} names a module twice`);
  }
});
