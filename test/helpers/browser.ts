// Debian's chromium, driven by playwright-core (never a browser download), kept inside a folder
// of the test's own: its profile and every temporary file it or playwright makes go there, and
// nothing it does reaches the network beyond the loopback pages it is sent to.
import { mkdir } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type Browser, type BrowserContext } from 'playwright-core';
import { requireTool } from './tools.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

// Without these, chromium phones home at start (updates, sync, field trials) through a network this
// machine does not have, and fails on each attempt.
const QUIET_FLAGS = [
  '--no-sandbox', // as root in a container, chromium's own sandbox cannot start
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--disable-default-apps',
  '--disable-features=Translate,MediaRouter,OptimizationHints',
];

export interface TestBrowser {
  readonly browser: Browser;
  /** A fresh context: its own cookies, the gateway's certificate taken as it is (the UI is under test, not the CA). */
  context(options?: { readonly viewport?: { width: number; height: number } }): Promise<BrowserContext>;
  close(): Promise<void>;
}

/**
 * Starts chromium headless with every temporary file under `dir`. A missing chromium fails the
 * test, naming the package to install.
 */
export async function launchBrowser(dir: string): Promise<TestBrowser> {
  const executablePath = requireTool('chromium');
  const tmp = join(dir, 'browser-tmp');
  await mkdir(tmp, { recursive: true });
  // playwright puts the profile and its artifacts in os.tmpdir(), read from TMPDIR at each call.
  process.env.TMPDIR = tmp;
  const browser = await chromium.launch({ executablePath, headless: true, args: QUIET_FLAGS, env: { ...process.env, TMPDIR: tmp, HOME: tmp } });
  return {
    browser,
    context: (options = {}) => browser.newContext({ ignoreHTTPSErrors: true, ...(options.viewport ? { viewport: options.viewport } : {}) }),
    close: () => browser.close(),
  };
}

/**
 * Where screenshots are kept as test artifacts: $TEST_ARTIFACTS/browser when set (a CI job's
 * artifact folder), else node_modules/.cache/test-artifacts/browser, outside the working tree.
 */
export async function artifactsDir(): Promise<string> {
  const dir = process.env.TEST_ARTIFACTS ? join(process.env.TEST_ARTIFACTS, 'browser') : join(ROOT, 'node_modules', '.cache', 'test-artifacts', 'browser');
  await mkdir(dir, { recursive: true });
  return dir;
}
