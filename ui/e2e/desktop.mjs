// The desktop app end to end: the real Tauri window under Xvfb, driven through tauri-driver and
// WebKitWebDriver (selenium-webdriver as the client). The app starts its embedded server (on a
// port chosen here, so `watchfloor simulate` can reach it), shows the board, a simulated call
// placed with `watchfloor simulate` appears, listen-in starts on it and the mixer reports
// frames played (a null ALSA device stands in for speakers). Measures start-up time to a usable
// board and the app's memory; screenshot in ui/e2e/out/desktop.png.
//
//   DESKTOP_BIN=target/debug/watchfloor-desktop WATCHFLOOR_BIN=target/debug/watchfloor node ui/e2e/desktop.mjs

import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Builder, By, until } from 'selenium-webdriver';
import { assert, checks, freePort, sleep } from './harness.mjs';

const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, 'out');
mkdirSync(out, { recursive: true });
const root = join(here, '../..');
const desktopBin = resolve(process.env.DESKTOP_BIN ?? join(root, 'target/debug/watchfloor-desktop'));
const serverBin = resolve(process.env.WATCHFLOOR_BIN ?? join(root, 'target/debug/watchfloor'));
const { check, fail, failures } = checks();

const home = mkdtempSync(join(tmpdir(), 'watchfloor-desktop-'));
// No sound card here: ALSA's null device plays (and discards) what the mixer produces.
writeFileSync(join(home, '.asoundrc'), 'pcm.!default { type null }\nctl.!default { type hw card 0 }\n');
const port = await freePort();
const display = `:${90 + (process.pid % 9)}`;
const env = {
  ...process.env,
  HOME: home,
  XDG_CONFIG_HOME: join(home, '.config'),
  XDG_DATA_HOME: join(home, '.local/share'),
  DISPLAY: display,
  WATCHFLOOR_BIND: `127.0.0.1:${port}`,
  WATCHFLOOR_DATA_DIR: join(home, 'store'),
  RUST_LOG: 'warn',
  WEBKIT_DISABLE_COMPOSITING_MODE: '1',
};
delete env.OPENAI_API_KEY;
const procs = [];
const start = (cmd, args) => { const p = spawn(cmd, args, { env, stdio: ['ignore', 'inherit', 'inherit'] }); procs.push(p); return p; };
start('Xvfb', [display, '-screen', '0', '1440x900x24', '-nolisten', 'tcp']);
await sleep(500);
const driverPort = await freePort();
start(process.env.TAURI_DRIVER ?? join(process.env.HOME ?? '/root', '.cargo/bin/tauri-driver'), ['--port', String(driverPort), '--native-driver', '/usr/bin/WebKitWebDriver']);
await sleep(1000);

/** RSS of the app's process, and of it with its WebKit child processes, KiB. */
function rssKiB(name) {
  const rss = (pid) => {
    try {
      return Number(readFileSync(`/proc/${pid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]);
    } catch {
      return 0;
    }
  };
  try {
    const pid = execFileSync('pgrep', ['-n', '-f', name]).toString().trim();
    let tree = rss(pid);
    const kids = (p) => { try { return execFileSync('pgrep', ['-P', p]).toString().trim().split('\n').filter(Boolean); } catch { return []; } };
    const stack = kids(pid);
    while (stack.length) {
      const k = stack.pop();
      tree += rss(k);
      stack.push(...kids(k));
    }
    return { app: rss(pid), tree };
  } catch {
    return { app: NaN, tree: NaN };
  }
}

let driver;
try {
  const t0 = Date.now();
  driver = await new Builder()
    .usingServer(`http://127.0.0.1:${driverPort}/`)
    .withCapabilities({ browserName: 'wry', 'tauri:options': { application: desktopBin } })
    .build();
  let startupMs;
  await check('the window starts signed in and shows the board', async () => {
    await driver.wait(until.elementLocated(By.css('[data-testid=board], [data-testid=board-empty]')), 30000);
    await driver.wait(until.elementLocated(By.css('[data-testid=connection][data-resyncs]')), 10000);
    const conn = await driver.findElement(By.css('[data-testid=connection]'));
    await driver.wait(until.elementTextContains(conn, 'Live'), 10000);
    startupMs = Date.now() - t0;
    console.log(`     start-up to a usable board: ${startupMs} ms`);
  });
  const rssStart = rssKiB('watchfloor-desktop');
  let sid;
  await check('a call placed with `watchfloor simulate` appears', async () => {
    let outText = '';
    const sim = spawn(serverBin, ['simulate', 'structure-fire', '--server', `http://127.0.0.1:${port}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    sim.stderr.on('data', (d) => (outText += d));
    sim.on('exit', (code) => { if (code) console.log(`     simulate exited ${code}: ${outText}`); });
    procs.push(sim);
    sim.stdout.on('data', (d) => (outText += d));
    await driver.wait(async () => {
      sid = await driver.executeScript("return [...document.querySelectorAll('[data-testid=call-card]')].find((c) => c.innerText.toLowerCase().includes('structure fire'))?.dataset.call ?? null");
      return !!sid;
    }, 40000);
    assert(sid, 'the structure fire call on the board');
  });
  await check('listen-in plays the call through the mixer', async () => {
    await driver.executeScript((s) => window.__TAURI__.core.invoke('listen', { callId: s, tracks: ['caller', 'agent'] }), sid);
    let status;
    await driver.wait(async () => {
      status = await driver.executeAsyncScript('const done = arguments[arguments.length - 1]; window.__TAURI__.core.invoke("listen_status").then(done, (e) => done({ error: String(e) }));');
      return status && status.frames_played > 10;
    }, 20000);
    console.log(`     mixer: ${JSON.stringify(status)}`);
    assert(status.listening === sid && !status.device_error, JSON.stringify(status));
    await sleep(1500);
    // WebKitWebDriver's screenshot hangs under Xvfb here: take the X display instead.
    execFileSync('import', ['-window', 'root', join(out, 'desktop.png')], { env });
  });
  await sleep(5000);
  const rssBusy = rssKiB('watchfloor-desktop');
  const mib = (k) => Math.round(k / 1024);
  console.log(`     memory (RSS): app process ${mib(rssStart.app)} MiB at start-up, ${mib(rssBusy.app)} MiB with calls live; with its WebKit processes ${mib(rssStart.tree)} / ${mib(rssBusy.tree)} MiB`);
} catch (e) {
  fail('set-up', e);
} finally {
  try { await driver?.quit(); } catch { /* gone */ }
  for (const p of procs.reverse()) p.kill('SIGTERM');
  await sleep(500);
  rmSync(home, { recursive: true, force: true });
}
console.log(failures() ? `${failures()} desktop check(s) failed` : 'all desktop checks passed; screenshot in ui/e2e/out/desktop.png');
process.exit(failures() ? 1 : 0);
