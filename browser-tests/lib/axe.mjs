// axe-core, the accessibility rules engine, run inside a page. The pages' Content Security
// Policy allows no inline script, so its source goes in through the DevTools protocol
// (page.evaluate), which the policy does not govern, rather than as a <script> tag.

import { createRequire } from 'node:module';
import { readFileSync } from 'node:fs';

const require = createRequire(import.meta.url);

/** axe's source, or null when the package is not installed (the caller says so and skips). */
function source() {
  try {
    return readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');
  } catch {
    return null;
  }
}

const axeSource = source();

/** Whether axe-core is installed in browser-tests/node_modules. */
export const axeAvailable = axeSource !== null;

/**
 * The violations of axe's WCAG 2 A and AA rules (and its best practices) in the part of the
 * page that `selector` names, as `{ id, impact, help, nodes, why }` with each node's
 * selector, and beside it in `why` what axe found there (a contrast's ratio and colours, say):
 * an empty list is a clean page.
 */
export async function axeViolations(page, selector) {
  if (!axeAvailable) throw new Error('axe-core is not installed in browser-tests/node_modules');
  if (!(await page.evaluate(() => typeof window.axe === 'object'))) await page.evaluate(axeSource);
  return page.evaluate(async (include) => {
    const result = await window.axe.run({ include: [include] }, {
      runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice'] },
      resultTypes: ['violations'],
    });
    // A selector that matched nothing would pass every rule: that is no check.
    if (!result.passes.length && !result.violations.length) throw new Error(`axe checked nothing in ${include}`);
    return result.violations.map((v) => ({
      id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map((n) => n.target.join(' ')),
      why: v.nodes.map((n) => [...n.any, ...n.all, ...n.none].map((c) => c.message).filter(Boolean).join('; ')),
    }));
  }, selector);
}

/** Violations as lines a person can act on: each rule, then each element with what is wrong there. */
export function describeViolations(violations) {
  return violations.map((v) => [
    `  ${v.id} (${v.impact}): ${v.help}`,
    ...v.nodes.map((node, i) => `    ${node}${v.why?.[i] ? ` — ${v.why[i]}` : ''}`),
  ].join('\n')).join('\n');
}
