// Real-browser key rotation test for keyroll-demo.
//
// Drives Debian's headless Chromium (playwright-core, no browser download) through
// the demo's HTML contract: sign up, log out, log in, stage + promote a key on
// /operator, check the session survives and moves to the new key (cookie mode: also
// replay the pre-rotation cookie), retire the old key, check again (cookie mode: the
// old cookie is now refused). Screenshots go to the output directory. README.md
// beside this file lists every check.
//
//   node run.mjs --url http://127.0.0.1:PORT --out DIR --mode cookie|server
//                --operator-token-file FILE
//   (or KEYROLL_DEMO_URL, KEYROLL_SCREENSHOT_DIR, KEYROLL_DEMO_MODE,
//    KEYROLL_OPERATOR_TOKEN_FILE). FILE is the demo's operator token (the
//   `operator-token` file of its data directory): a path, never the token itself.
//
// Progress goes to stderr. On success the LAST line of stdout is one JSON object:
//   {"mode":"cookie","cookie":"<final sessionid>","key_ids":{"a":"…","b":"…"},…}
// On any failed check: a "FAILED: …" message on stderr and exit code 1.

import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];
const KEY_ID = /^[0-9a-f]{8}$/;
const USER = 'alice';
const PASSWORD = 'correct horse battery staple';

class CheckFailed extends Error {}

function parseArgs(argv) {
  const opts = {
    url: process.env.KEYROLL_DEMO_URL,
    out: process.env.KEYROLL_SCREENSHOT_DIR,
    mode: process.env.KEYROLL_DEMO_MODE,
    chromium: process.env.KEYROLL_CHROMIUM || '/usr/bin/chromium',
    'operator-token-file': process.env.KEYROLL_OPERATOR_TOKEN_FILE,
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (!['--url', '--out', '--mode', '--chromium', '--operator-token-file'].includes(flag) || value === undefined) {
      throw new CheckFailed(`usage: node run.mjs --url URL --out DIR --mode cookie|server --operator-token-file FILE [--chromium PATH] (bad argument ${JSON.stringify(flag)})`);
    }
    opts[flag.slice(2)] = value;
    i++;
  }
  if (!opts.url) throw new CheckFailed('no base URL: pass --url or set KEYROLL_DEMO_URL');
  if (!opts.out) throw new CheckFailed('no screenshot directory: pass --out or set KEYROLL_SCREENSHOT_DIR');
  if (opts.mode !== 'cookie' && opts.mode !== 'server') {
    throw new CheckFailed(`--mode must be cookie or server, not ${JSON.stringify(opts.mode)}`);
  }
  if (!opts['operator-token-file']) {
    throw new CheckFailed('no operator token: pass --operator-token-file or set KEYROLL_OPERATOR_TOKEN_FILE');
  }
  opts.operatorToken = readFileSync(opts['operator-token-file'], 'utf8').trim();
  opts.url = opts.url.replace(/\/+$/, '');
  opts.out = resolve(opts.out);
  return opts;
}

const log = (...a) => console.error('[browser]', ...a);

function check(cond, message) {
  if (!cond) throw new CheckFailed(message);
}

function expectEqual(actual, expected, what) {
  check(actual === expected, `${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  mkdirSync(opts.out, { recursive: true });
  const profile = mkdtempSync(join(tmpdir(), 'keyroll-chromium-'));
  const t0 = Date.now();
  let context;
  try {
    context = await chromium.launchPersistentContext(profile, {
      executablePath: opts.chromium,
      headless: true,
      args: CHROMIUM_ARGS,
      viewport: { width: 1024, height: 768 },
      timeout: 60_000,
    });
    log(`chromium ${context.browser()?.version() ?? ''} up in ${Date.now() - t0} ms (profile ${profile})`);
    let result;
    try {
      result = await scenario(context, opts);
    } catch (e) {
      // Leave a picture of the page the failure happened on.
      const page = context.pages()[0];
      if (page) {
        const file = join(opts.out, 'FAILED.png');
        await page.screenshot({ path: file, fullPage: true }).then(
          () => log(`screenshot of the failing page: ${file} (${page.url()})`),
          () => {},
        );
      }
      throw e;
    }
    log(`all checks passed in ${Date.now() - t0} ms`);
    process.stdout.write(JSON.stringify(result) + '\n');
  } finally {
    if (context) await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
  }
}

async function scenario(context, opts) {
  const base = opts.url;
  // Every main-frame document response, to report HTTP errors precisely.
  let lastDoc = null;
  const consoleErrors = [];
  function watch(p) {
    p.setDefaultTimeout(15_000);
    p.setDefaultNavigationTimeout(30_000);
    p.on('response', (r) => {
      const req = r.request();
      if (req.isNavigationRequest() && req.frame() === p.mainFrame()) {
        lastDoc = { url: r.url(), status: r.status(), method: req.method() };
      }
    });
    p.on('pageerror', (e) => consoleErrors.push(String(e)));
    return p;
  }
  // The page the helpers below act on: alice's, or the operator's (a browser
  // context of its own: the operator is somebody else, with other cookies).
  const alicePage = watch(context.pages()[0] ?? (await context.newPage()));
  let page = alicePage;
  let operatorPage = null;
  async function asOperator(steps) {
    page = operatorPage;
    try {
      return await steps();
    } finally {
      page = alicePage;
    }
  }

  let shot = 0;
  const screenshots = [];
  async function screenshot(name) {
    shot += 1;
    const file = `${String(shot).padStart(2, '0')}-${name}.png`;
    await page.screenshot({ path: join(opts.out, file), fullPage: true });
    screenshots.push(file);
  }

  function checkDocOk(what) {
    check(lastDoc !== null, `${what}: no document response seen`);
    check(lastDoc.status < 400, `${what}: HTTP ${lastDoc.status} for ${lastDoc.method} ${lastDoc.url}`);
  }

  async function goto(path, what) {
    const resp = await page.goto(base + path, { waitUntil: 'load' });
    check(resp !== null, `${what}: no response for GET ${path}`);
    check(resp.status() < 400, `${what}: GET ${path} answered HTTP ${resp.status()}`);
  }

  // Click something that submits a form; wait for the resulting document (after redirects).
  async function submit(selector, what) {
    const loc = page.locator(selector);
    check((await loc.count()) === 1, `${what}: expected exactly one ${selector} on ${page.url()}, found ${await loc.count()}`);
    const loaded = page.waitForEvent('load', { timeout: 30_000 });
    await loc.click();
    await loaded;
    checkDocOk(what);
  }

  async function text(selector, what) {
    const loc = page.locator(selector);
    const n = await loc.count();
    check(n === 1, `${what}: expected exactly one ${selector} on ${page.url()}, found ${n}`);
    return (await loc.innerText()).trim();
  }

  // GET / and read the contract's spans.
  async function home(what) {
    await goto('/', what);
    const h = {
      whoami: await text('#whoami', what),
      sessionKey: await text('#session-key-id', what),
      primaryKey: await text('#primary-key-id', what),
      visits: await text('#visits', what),
      cookie: await sessionCookie(),
    };
    check(KEY_ID.test(h.primaryKey), `${what}: #primary-key-id is ${JSON.stringify(h.primaryKey)}, not 8 hex digits`);
    check(h.sessionKey === 'none' || KEY_ID.test(h.sessionKey), `${what}: #session-key-id is ${JSON.stringify(h.sessionKey)}, not 8 hex digits or "none"`);
    check(/^\d+$/.test(h.visits), `${what}: #visits is ${JSON.stringify(h.visits)}, not a number`);
    log(`${what}: whoami=${h.whoami} session-key-id=${h.sessionKey} primary-key-id=${h.primaryKey} visits=${h.visits} cookie=${h.cookie ? h.cookie.slice(0, 24) + '…' : '(none)'}`);
    return h;
  }

  async function sessionCookie() {
    const all = await context.cookies(base);
    const c = all.filter((x) => x.name === 'sessionid');
    check(c.length <= 1, `more than one sessionid cookie: ${JSON.stringify(c)}`);
    return c.length ? c[0].value : null;
  }

  // Replace the sessionid cookie's value, keeping its attributes.
  async function setSessionCookie(value) {
    const c = (await context.cookies(base)).find((x) => x.name === 'sessionid');
    if (c) {
      await context.addCookies([{ ...c, value }]);
    } else {
      await context.addCookies([{ name: 'sessionid', value, url: base + '/' }]);
    }
    expectEqual(await sessionCookie(), value, 'setting the sessionid cookie');
  }

  // GET /operator and read the ring table: [{id, role}] in table order.
  async function ring(what) {
    await goto('/operator', what);
    const tables = await page.locator('table#ring').count();
    check(tables === 1, `${what}: expected one <table id="ring"> on /operator, found ${tables}`);
    for (const b of ['#stage-submit', '#promote-submit', '#retire-submit']) {
      check((await page.locator(b).count()) === 1, `${what}: ${b} missing on /operator`);
    }
    const rows = await page.locator('table#ring tr').evaluateAll((trs) =>
      trs.map((tr) => Array.from(tr.querySelectorAll('td')).map((td) => td.textContent.trim())),
    );
    const keys = [];
    for (const cells of rows) {
      if (cells.length === 0) continue; // header row (th only)
      const id = cells.find((c) => /^[0-9a-f]{8}$/.test(c));
      const role = cells.map((c) => c.toLowerCase()).find((c) => ['primary', 'staged', 'fallback'].includes(c));
      check(id && role, `${what}: ring row ${JSON.stringify(cells)} has no 8-hex key id and role (primary/staged/fallback) cell`);
      keys.push({ id, role });
    }
    log(`${what}: ring = ${keys.map((k) => `${k.id}(${k.role})`).join(', ')}`);
    return keys;
  }

  const roleOf = (keys, id) => keys.find((k) => k.id === id)?.role;

  // 1. Sign up.
  await goto('/signup', 'signup page');
  check((await page.locator('#signup-form').count()) === 1, 'signup page: #signup-form missing');
  await page.locator('#signup-form #username').fill(USER);
  await page.locator('#signup-form #password').fill(PASSWORD);
  await screenshot('signup-form');
  await submit('#signup-submit', 'sign up');
  expectEqual(new URL(page.url()).pathname, '/', 'page after sign-up (should redirect to /)');
  const cookie0 = await sessionCookie();
  check(cookie0, 'after sign-up: the browser has no sessionid cookie');

  const h0 = await home('home after sign-up');
  expectEqual(h0.whoami, USER, 'home after sign-up: #whoami');
  check(KEY_ID.test(h0.sessionKey), `home after sign-up: #session-key-id is ${JSON.stringify(h0.sessionKey)}, expected a key id`);
  expectEqual(h0.sessionKey, h0.primaryKey, 'home after sign-up: #session-key-id (a fresh session is signed by the primary)');
  const A = h0.sessionKey;
  await screenshot('home-signed-up');

  // 2. Log out, then log back in through /login: the session that goes through the
  //    rotation is the login one.
  await submit('#logout-submit', 'log out');
  const hOut = await home('home after logout');
  expectEqual(hOut.whoami, 'anonymous', 'home after logout: #whoami');
  // No session, or a fresh anonymous one (the visit counter) signed by the primary.
  check(hOut.sessionKey === 'none' || hOut.sessionKey === A,
    `home after logout: #session-key-id should be "none" or the primary ${A}, got ${JSON.stringify(hOut.sessionKey)}`);
  await screenshot('home-logged-out');

  await goto('/login', 'login page');
  check((await page.locator('#login-form').count()) === 1, 'login page: #login-form missing');
  await page.locator('#login-form #username').fill(USER);
  await page.locator('#login-form #password').fill(PASSWORD);
  await screenshot('login-form');
  await submit('#login-submit', 'log in');
  expectEqual(new URL(page.url()).pathname, '/', 'page after login (should redirect to /)');
  const cookieLogin = await sessionCookie();
  check(cookieLogin, 'after login: the browser has no sessionid cookie');
  const h1 = await home('home after login');
  expectEqual(h1.whoami, USER, 'home after login: #whoami');
  expectEqual(h1.sessionKey, A, 'home after login: #session-key-id');
  await screenshot('home-logged-in');

  // 3. /operator asks alice's browser for the operator token and shows no ring.
  await goto('/operator', 'operator page in alice\'s browser');
  check((await page.locator('#operator-login-form').count()) === 1, 'operator page in alice\'s browser: #operator-login-form missing');
  check((await page.locator('table#ring').count()) === 0, 'operator page in alice\'s browser: the ring is shown without the operator token');

  // The operator, in a browser context of their own, gives the token once.
  // (Closed with the browser when the run ends, on a failure too.)
  const operatorContext = await context.browser().newContext({ viewport: { width: 1024, height: 768 } });
  operatorPage = watch(await operatorContext.newPage());
  await asOperator(async () => {
    await goto('/operator', 'operator login page');
    for (const id of ['#operator-login-form', '#operator-token', '#operator-login-submit']) {
      check((await page.locator(id).count()) === 1, `operator login page: ${id} missing`);
    }
    await page.locator('#operator-login-form #operator-token').fill(opts.operatorToken);
    await submit('#operator-login-submit', 'operator login');
    expectEqual(new URL(page.url()).pathname, '/operator', 'page after the operator login (should redirect to /operator)');
  });

  // Stage, then promote.
  const { B, cookieBefore } = await asOperator(async () => {
    const r0 = await ring('operator before rotation');
    expectEqual(roleOf(r0, A), 'primary', `operator before rotation: role of key A ${A}`);
    await screenshot('operator-before');

    await submit('#stage-submit', 'stage');
    const r1 = await ring('operator after stage');
    const staged = r1.filter((k) => k.role === 'staged');
    check(staged.length === 1, `operator after stage: expected exactly one staged key, ring is ${JSON.stringify(r1)}`);
    const B = staged[0].id;
    check(B !== A, `operator after stage: staged key ${B} equals the primary`);
    expectEqual(roleOf(r1, A), 'primary', `operator after stage: role of key A ${A}`);
    await screenshot('operator-staged');

    // Alice's cookie as it was before the rotation: signed by A (cookie mode) / the session key (server mode).
    const cookieBefore = await sessionCookie();
    check(cookieBefore, 'before promote: no sessionid cookie');
    await submit('#promote-submit', 'promote');
    const r2 = await ring('operator after promote');
    expectEqual(roleOf(r2, B), 'primary', `operator after promote: role of key B ${B}`);
    expectEqual(roleOf(r2, A), 'fallback', `operator after promote: role of key A ${A}`);
    await screenshot('operator-promoted');
    return { B, cookieBefore };
  });

  // 4. Reload /: still alice, primary is now B, and the session moves to B.
  const h2 = await home('home after promote');
  expectEqual(h2.whoami, USER, 'home after promote: #whoami (the session must survive the rotation)');
  expectEqual(h2.primaryKey, B, 'home after promote: #primary-key-id');
  check(h2.primaryKey !== A, 'home after promote: #primary-key-id did not change');
  await screenshot('home-after-promote');

  let serverKeyCycled = false;
  let stale = null;
  if (opts.mode === 'cookie') {
    // The cookie, untouched since the rotation, is verified by A (now a fallback)
    // and re-issued under B with this response.
    expectEqual(h2.sessionKey, A, 'cookie mode, home after promote: #session-key-id (the cookie was signed before the rotation)');
    check(h2.cookie && h2.cookie !== cookieBefore, 'cookie mode, after promote: the browser\'s sessionid cookie was not replaced (re-signed)');
  } else {
    // The row, untouched since the rotation, is verified by A (now a fallback).
    expectEqual(h2.sessionKey, A, 'server mode, home after promote: #session-key-id (the session row was signed before the rotation)');
    // Django's get_user cycles the session key when the login hash verified under a
    // fallback key; the key may change here, once.
    serverKeyCycled = h2.cookie !== cookieBefore;
    check(h2.cookie, 'server mode, after promote: no sessionid cookie');
    if (serverKeyCycled) log('server mode: the session key was cycled on the first request after the promotion (as Django does for a login hash verified by a fallback key)');
  }

  const h3 = await home('home, next request');
  expectEqual(h3.whoami, USER, 'home, next request: #whoami');
  expectEqual(h3.sessionKey, B, opts.mode === 'cookie'
    ? 'home, next request: #session-key-id (the re-signed cookie must verify under the new primary)'
    : 'home, next request: #session-key-id (the session row must have been re-signed with the new primary)');
  expectEqual(h3.primaryKey, B, 'home, next request: #primary-key-id');
  if (opts.mode === 'server') expectEqual(h3.cookie, h2.cookie, 'server mode, next request: sessionid cookie (the session key must now stay the same)');
  check(Number(h3.visits) > Number(h1.visits), `visits did not go up across the rotation (${h1.visits} -> ${h3.visits}): the session data was lost`);
  await screenshot('home-resigned');

  if (opts.mode === 'cookie') {
    // A browser that was away during the rotation still holds a cookie signed by A.
    const good = h3.cookie;
    await setSessionCookie(cookieBefore);
    const s1 = await home('stale A-signed cookie, before retire');
    expectEqual(s1.whoami, USER, 'stale A-signed cookie, before retire: #whoami (a fallback key must still verify)');
    expectEqual(s1.sessionKey, A, 'stale A-signed cookie, before retire: #session-key-id');
    check(s1.cookie && s1.cookie !== cookieBefore, 'stale A-signed cookie, before retire: the cookie was not re-signed');
    const s2 = await home('stale cookie, next request');
    expectEqual(s2.whoami, USER, 'stale cookie, next request: #whoami');
    expectEqual(s2.sessionKey, B, 'stale cookie, next request: #session-key-id');
    await screenshot('home-stale-cookie-resigned');
    await setSessionCookie(good);
    stale = { resigned: s1.cookie };
  }

  // 5. The operator retires the fallback (A).
  await asOperator(async () => {
    await ring('operator before retire');
    await submit('#retire-submit', 'retire');
    const r3 = await ring('operator after retire');
    check(roleOf(r3, A) === undefined, `operator after retire: key A ${A} is still in the ring: ${JSON.stringify(r3)}`);
    expectEqual(roleOf(r3, B), 'primary', `operator after retire: role of key B ${B}`);
    await screenshot('operator-retired');
  });
  await operatorContext.close();

  const h4 = await home('home after retire');
  expectEqual(h4.whoami, USER, 'home after retire: #whoami (the session must survive retiring the old key)');
  expectEqual(h4.sessionKey, B, 'home after retire: #session-key-id');
  expectEqual(h4.primaryKey, B, 'home after retire: #primary-key-id');
  if (opts.mode === 'server') expectEqual(h4.cookie, h2.cookie, 'server mode, after retire: sessionid cookie');
  check(Number(h4.visits) > Number(h3.visits), `visits did not go up after retiring (${h3.visits} -> ${h4.visits})`);
  await screenshot('home-after-retire');
  let finalCookie = h4.cookie;
  check(finalCookie, 'after retire: no sessionid cookie');

  if (opts.mode === 'cookie') {
    // With A retired, a cookie signed by A is no session at all.
    await setSessionCookie(cookieBefore);
    const s3 = await home('stale A-signed cookie, after retire');
    expectEqual(s3.whoami, 'anonymous', 'stale A-signed cookie, after retire: #whoami (a retired key must not verify)');
    check(s3.sessionKey !== A, `stale A-signed cookie, after retire: #session-key-id is the retired key ${A}`);
    await screenshot('home-stale-cookie-refused');
    await setSessionCookie(finalCookie);
    const h5 = await home('home, final cookie restored');
    expectEqual(h5.whoami, USER, 'home, final cookie restored: #whoami');
    expectEqual(h5.sessionKey, B, 'home, final cookie restored: #session-key-id');
    finalCookie = h5.cookie;
  }

  check(consoleErrors.length === 0, `JavaScript errors on the pages: ${consoleErrors.join('; ')}`);

  return {
    mode: opts.mode,
    cookie: finalCookie,
    key_ids: { a: A, b: B },
    cookies: {
      signup: cookie0,
      login: cookieLogin,
      before_promote: cookieBefore,
      after_promote: h2.cookie,
      resigned: h3.cookie,
      after_retire: h4.cookie,
      ...(stale ? { stale_resigned: stale.resigned } : {}),
    },
    server_key_cycled: serverKeyCycled,
    visits: { login: h1.visits, after_promote: h2.visits, resigned: h3.visits, after_retire: h4.visits },
    screenshots,
  };
}

main().catch((e) => {
  if (e instanceof CheckFailed) {
    console.error(`FAILED: ${e.message}`);
  } else {
    console.error(`FAILED (error): ${e && e.stack ? e.stack : e}`);
  }
  process.exitCode = 1;
});
