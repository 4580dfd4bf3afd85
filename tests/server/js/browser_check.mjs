// The chat page in headless Chromium (Debian's), driven by playwright-core.
//
// usage: node browser_check.mjs URL   (env FAULTLAB_SCREENSHOT=PATH keeps a screenshot)
// Sends a message, reloads, cuts the transport while another client (the official
// socket.io-client under node) sends, and reconnects. Prints one JSON object of
// what the page showed at each step; tests/server/test_browser.py judges it.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { chromium } from 'playwright-core';
import { io } from 'socket.io-client';

const url = process.argv[2];
const STEP = 15000;
const CHROMIUM = process.env.FAULTLAB_CHROMIUM || '/usr/bin/chromium';
const HOSTILE = '<img src=x onerror="window.__pwned=1"><b>bold</b>';

const profile = mkdtempSync(join(tmpdir(), 'faultlab-chromium-'));
const report = { steps: {} };
let browser;
let sender;

const listed = (page) => page.$$eval('#messages > li', (items) => items.map((li) => ({
  text: li.textContent, offset: Number(li.dataset.offset), children: li.childElementCount,
})));

async function waitListed(page, texts) {
  await page.waitForFunction(
    (want) => {
      const have = [...document.querySelectorAll('#messages > li')].map((li) => li.textContent);
      return want.every((t) => have.includes(t));
    },
    texts,
    { timeout: STEP },
  );
}

async function senderChat(content, clientOffset) {
  const answer = await sender.timeout(STEP).emitWithAck('chat message', content, clientOffset);
  if (answer) throw new Error(`sender's ${content} was refused: ${JSON.stringify(answer)}`);
}

try {
  // a fresh profile each run (playwright passes it as --user-data-dir)
  browser = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync'],
  });
  const page = browser.pages()[0] ?? await browser.newPage();
  const consoleErrors = [];
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  page.on('pageerror', (e) => consoleErrors.push(String(e)));
  page.on('response', (r) => { if (r.status() >= 400) consoleErrors.push(`${r.status()} ${r.url()}`); });

  // 1. send and see it, rendered as text
  await page.goto(url);
  await page.waitForFunction(() => window.chat?.socket.connected, null, { timeout: STEP });
  await page.fill('#input', 'hello from the page');
  await page.press('#input', 'Enter');
  await page.fill('#input', HOSTILE);
  await page.click('#form > button:not([type])');
  await waitListed(page, ['hello from the page', HOSTILE]);
  report.steps.send = {
    listed: await listed(page),
    pwned: await page.evaluate(() => window.__pwned === 1),
    status: await page.textContent('#status'),
  };

  // 2. reload: a new display session sees the history
  await page.reload();
  await page.waitForFunction(() => window.chat?.socket.connected, null, { timeout: STEP });
  await waitListed(page, ['hello from the page', HOSTILE]);
  report.steps.reload = { listed: await listed(page) };

  // 3. cut the transport; another client sends while the page is away; the page sends too
  sender = io(url, { transports: ['websocket'] });
  await new Promise((resolve, reject) => {
    sender.once('connect', resolve);
    sender.once('connect_error', reject);
  });
  await page.evaluate(() => {
    window.chat.socket.io.reconnection(false);
    window.chat.socket.io.engine.close();
  });
  await page.waitForFunction(() => !window.chat.socket.connected, null, { timeout: STEP });
  const missed = ['missed 1', 'missed 2', 'missed 3'];
  for (const [i, text] of missed.entries()) await senderChat(text, `sender-${i}`);
  await page.fill('#input', 'typed while offline');
  await page.press('#input', 'Enter');
  const offlineStatus = await page.textContent('#status');
  await page.evaluate(() => {
    window.chat.socket.io.reconnection(true);
    window.chat.socket.connect();
  });
  await waitListed(page, [...missed, 'typed while offline']);
  await senderChat('after', 'sender-after');
  await waitListed(page, ['after']);
  report.steps.recover = {
    offlineStatus,
    recovered: await page.evaluate(() => window.chat.socket.recovered === true),
    status: await page.getAttribute('#status', 'data-state'),
    listed: await listed(page),
  };
  if (process.env.FAULTLAB_SCREENSHOT) await page.screenshot({ path: process.env.FAULTLAB_SCREENSHOT });
  report.consoleErrors = consoleErrors;
  report.ok = true;
} catch (e) {
  report.ok = false;
  report.error = String(e?.stack ?? e);
} finally {
  sender?.disconnect();
  await browser?.close().catch(() => {});
  rmSync(profile, { recursive: true, force: true });
}
process.stdout.write(`${JSON.stringify(report)}\n`);
process.exit(report.ok ? 0 : 1);
