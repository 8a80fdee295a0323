// What the end-to-end scripts share: a free loopback port, sleeping, waiting for a condition,
// and named checks that are counted rather than stopping the run.

import { createServer } from 'node:net';

/** A port free on 127.0.0.1 right now. */
export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
    s.on('error', fail);
  });
}

export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Throws `msg` unless `cond`. */
export function assert(cond, msg) {
  if (!cond) throw new Error(msg);
}

/** Polls `fn` every 100 ms until it returns something truthy (returned) or `timeoutMs` passes. */
export async function waitFor(what, fn, timeoutMs = 20000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn().catch(() => null);
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(100);
  }
}

/** Named checks: each prints ok/FAIL with its time; `failures()` counts the failed ones. */
export function checks() {
  let failed = 0;
  return {
    async check(name, fn) {
      const t0 = Date.now();
      try {
        await fn();
        console.log(`ok   ${name} (${Date.now() - t0} ms)`);
      } catch (e) {
        failed += 1;
        console.log(`FAIL ${name}: ${e?.stack ?? e}`);
      }
    },
    fail(what, e) {
      failed += 1;
      console.log(`FAIL ${what}: ${e?.stack ?? e}`);
    },
    failures: () => failed,
  };
}
