// Real-browser rotation test for the keyroll Django package (tests/browser/django.sh
// starts the server and runs this).
//
// A headless Chromium logs in through Django's LoginView while the ring file holds
// key A alone; the ring file is rewritten to {B primary, A fallback}; the browser
// visits a page that touches neither the session nor the user; the ring file is
// rewritten to B alone; the browser, with the cookies it has, is still logged in
// (the login_required page greets it). The running server follows the ring file
// (KEYROLL_RING) without a restart.
//
//   node django.mjs   with KEYROLL_DJANGO_URL, KEYROLL_DJANGO_RING (the ring file),
//   KEYROLL_DJANGO_A, KEYROLL_DJANGO_B (the two secrets), KEYROLL_CHROMIUM (optional).
//
// Progress on stderr; the last stdout line is a JSON result; exit 1 on a failed check.

import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

const CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];
const url = process.env.KEYROLL_DJANGO_URL;
const ring = process.env.KEYROLL_DJANGO_RING;
const [A, B] = [process.env.KEYROLL_DJANGO_A, process.env.KEYROLL_DJANGO_B];
const log = (m) => process.stderr.write(`[django.mjs] ${m}\n`);
const fail = (m) => { throw new Error(`FAILED: ${m}`); };

function writeRing(keys) {
  const text = keys.map(([role, secret, retire]) =>
    `[[keys]]\nrole = "${role}"\nsecret = "${secret}"\n` + (retire ? `retire_after = "${retire}"\n` : '')).join('\n');
  const tmp = `${ring}.tmp`;
  writeFileSync(tmp, text, { mode: 0o600 });
  renameSync(tmp, ring);
}

async function sessionCookie(context) {
  return (await context.cookies()).find((c) => c.name === 'sessionid')?.value;
}

const profile = mkdtempSync(join(tmpdir(), 'keyroll-django-browser-'));
let context;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.KEYROLL_CHROMIUM || '/usr/bin/chromium', headless: true, args: CHROMIUM_ARGS, timeout: 60_000,
  });
  const page = context.pages()[0] ?? await context.newPage();

  writeRing([['primary', A]]);
  await page.goto(`${url}/private/`);
  if (!page.url().includes('/accounts/login/')) fail(`not sent to the login page: ${page.url()}`);
  await page.fill('#id_username', 'alice');
  await page.fill('#id_password', 'pw-alice');
  await Promise.all([page.waitForURL(`${url}/private/`), page.click('button[type=submit]')]);
  const hello = (await page.textContent('body')).trim();
  if (hello !== 'hello alice') fail(`after logging in: ${hello}`);
  const before = await sessionCookie(context);
  log(`logged in under A (session ${before?.slice(0, 6)}…)`);

  writeRing([['primary', B], ['fallback', A, '2999-01-01T00:00:00Z']]);
  await page.goto(`${url}/plain/`);
  if ((await page.textContent('body')).trim() !== 'ok') fail('the plain page');
  log('rotated to {B, A}; visited a page that touches neither the session nor the user');

  writeRing([['primary', B]]);
  await page.goto(`${url}/private/`);
  const after = (await page.textContent('body')).trim();
  if (page.url() !== `${url}/private/` || after !== 'hello alice') fail(`logged out after A was dropped: ${page.url()} ${after}`);
  log('A dropped: still logged in');
  console.log(JSON.stringify({ logged_in_after_rotation: true, same_cookie: before === await sessionCookie(context) }));
} catch (e) {
  log(e.message);
  process.exitCode = 1;
} finally {
  await context?.close();
  rmSync(profile, { recursive: true, force: true });
}
