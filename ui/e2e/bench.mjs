// The console under load (a benchmark, not a test): N live simulated calls (default 100) in one
// console in Debian's chromium, against `watchfloor serve` in training mode. Measures the main
// thread's long tasks (PerformanceObserver 'longtask', > 50 ms), frame times (requestAnimationFrame
// intervals) and each event's delay from the server's clock to the frame that shows it.
//
//   WATCHFLOOR_BIN=target/release/watchfloor [BENCH_GROUPED=1] node ui/e2e/bench.mjs [calls] [seconds]

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';
import { freePort, sleep } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const bin = resolve(process.env.WATCHFLOOR_BIN ?? join(here, '../../target/release/watchfloor'));
const CALLS = Number(process.argv[2] ?? 100);
const MEASURE_S = Number(process.argv[3] ?? 20);
const TOKEN = 'bench-console-token';

const port = await freePort();
const base = `http://127.0.0.1:${port}`;
const dir = mkdtempSync(join(tmpdir(), 'watchfloor-bench-'));
writeFileSync(join(dir, 'config.toml'), `training = true\nmax_calls = ${CALLS + 50}\n`);
const env = { ...process.env, WATCHFLOOR_DATA_DIR: join(dir, 'data'), WATCHFLOOR_BIND: `127.0.0.1:${port}`, WATCHFLOOR_CONSOLE_TOKEN: TOKEN, RUST_LOG: 'error' };
delete env.OPENAI_API_KEY;
const server = spawn(bin, ['serve', '--config', join(dir, 'config.toml')], { env, stdio: ['ignore', 'ignore', 'inherit'] });
const api = async (method, path, body) => {
  const r = await fetch(base + path, { method, headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' }, body: body ? JSON.stringify(body) : undefined });
  if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${await r.text()}`);
  return r.json();
};
for (let i = 0; ; i++) {
  try { if ((await fetch(`${base}/health`)).ok) break; } catch { /* not yet */ }
  if (i > 100) throw new Error('server did not start');
  await sleep(100);
}

const browser = await chromium.launch({ executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium', args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run'] });
const page = await browser.newPage({ viewport: { width: 1280, height: 800 } });
await page.addInitScript(() => {
  window.__wfBench = { latencies: [], longTasks: [], frames: [], audio: [] };
  new PerformanceObserver((l) => { for (const e of l.getEntries()) window.__wfBench.longTasks.push(e.duration); }).observe({ type: 'longtask', buffered: true });
  let last = performance.now();
  const tick = (t) => { window.__wfBench.frames.push(t - last); last = t; requestAnimationFrame(tick); };
  requestAnimationFrame(tick);
});
await page.goto(base + '/');
await page.fill('[data-testid=token]', TOKEN);
await page.keyboard.press('Enter');
await page.waitForSelector('[data-testid=board-empty]');

// BENCH_GROUPED=1: the calls are the city surge's eight emergencies over and over under the
// automatic policy, so the board shows them grouped, ~CALLS/8 calls under each incident.
const GROUPED = !!process.env.BENCH_GROUPED;
let cycle = [];
if (GROUPED) {
  const s = await api('GET', '/api/settings');
  await api('PUT', '/api/settings', { ...s, dispatch_policy: { mode: 'automatic' } });
  cycle = ['willow-fire-resident', 'harbor-cardiac', 'structure-fire', 'cardiac-arrest', 'junction-crash', 'gas-leak', 'hallway-smoke', 'burglary-in-progress'];
}
// Ramp up: ten calls a second.
for (let i = 0; i < CALLS; i++) {
  await api('POST', '/api/training/calls', GROUPED ? { scenario: cycle[i % cycle.length] } : {});
  if (i % 10 === 9) await sleep(1000);
}
await page.waitForFunction((n) => document.querySelectorAll('[data-testid=call-card]').length >= n, CALLS * 0.9, { timeout: 30000 });
// Measure a window with the calls live.
await page.evaluate(() => { const b = window.__wfBench; b.latencies.length = 0; b.longTasks.length = 0; b.frames.length = 0; });
const live0 = (await api('GET', '/api/calls/active')).calls.length;
await sleep(MEASURE_S * 1000);
const live1 = (await api('GET', '/api/calls/active')).calls.length;
const b = await page.evaluate(() => window.__wfBench);
const cards = await page.locator('[data-testid=call-card]').count();
const incidents = await page.locator('[data-testid=incident]').count();
// Listen-in under the same load: each caller frame's arrival in the console against when the
// caller sent it (stream start on the server's clock + the frame's stream position).
await page.keyboard.press('l');
await sleep(5000);
await page.keyboard.press('l');
const audio = await page.evaluate(() => window.__wfBench.audio);
let audioLat = [];
if (audio.length) {
  const sid = audio[0][3];
  const t = await api('GET', `/api/calls/${sid}/timeline`);
  const start = t.events.find((e) => e.type === 'stream_started')?.at_ms;
  audioLat = audio.filter((a) => a[1] === 'caller').map((a) => a[0] - (start + a[2]));
}
await browser.close();
server.kill('SIGTERM');
await new Promise((r) => server.once('exit', r));
rmSync(dir, { recursive: true, force: true });

const pct = (xs, p) => { const s = [...xs].sort((a, c) => a - c); return s.length ? s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] : NaN; };
const r = {
  calls_placed: CALLS, grouped: GROUPED, live_at_start: live0, live_at_end: live1, cards_on_board: cards, incidents_on_board: incidents, window_s: MEASURE_S,
  events: b.latencies.length,
  event_to_screen_ms: { p50: pct(b.latencies, 50), p95: pct(b.latencies, 95), p99: pct(b.latencies, 99), max: Math.max(...b.latencies) },
  frames: b.frames.length,
  frame_ms: { p50: +pct(b.frames, 50).toFixed(1), p95: +pct(b.frames, 95).toFixed(1), max: +Math.max(...b.frames).toFixed(1) },
  listen_in_caller_frames: audioLat.length,
  listen_in_delay_ms: { p50: pct(audioLat, 50), p95: pct(audioLat, 95), max: audioLat.length ? Math.max(...audioLat) : NaN },
  long_tasks: { count: b.longTasks.length, total_ms: Math.round(b.longTasks.reduce((a, c) => a + c, 0)), max_ms: Math.round(Math.max(0, ...b.longTasks)) },
};
console.log(JSON.stringify(r, null, 2));
