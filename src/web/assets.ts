// The web UI's stylesheet and its one script, kept here as strings and served from memory: nothing
// to ship beside the build, nothing fetched from a CDN (the pages' CSP allows only 'self'). Each is
// served under a name holding a hash of its content, so it can be cached as immutable and a new
// version of the gateway is never shown an old stylesheet.
//
// The script is progressive enhancement only: every page works without it. It shows the Copy
// buttons (rendered `hidden`, since without a script they could do nothing) and copies the text
// of their `data-copy` attribute, announcing the result in the page's aria-live region.

import { createHash } from 'node:crypto';

const CSS = `
:root {
  color-scheme: light dark;
  --bg: #ffffff;
  --fg: #1a1a1a;
  --muted: #595959;
  --border: #d0d0d0;
  --surface: #f4f5f7;
  --accent: #0b57d0;
  --accent-fg: #ffffff;
  --danger: #b3261e;
  --danger-fg: #ffffff;
  --focus: #0b57d0;
  --ok-bg: #e6f4ea;
  --ok-fg: #0d5323;
  --error-bg: #fce8e6;
  --error-fg: #8c1d18;
}
@media (prefers-color-scheme: dark) {
  :root {
    --bg: #121212;
    --fg: #e8e8e8;
    --muted: #b0b0b0;
    --border: #3c3c3c;
    --surface: #1e1f22;
    --accent: #8ab4f8;
    --accent-fg: #0b1a33;
    --danger: #f2b8b5;
    --danger-fg: #3c0d0b;
    --focus: #8ab4f8;
    --ok-bg: #0f2e1a;
    --ok-fg: #a8dab5;
    --error-bg: #3c1311;
    --error-fg: #f2b8b5;
  }
}
*, *::before, *::after { box-sizing: border-box; }
html { -webkit-text-size-adjust: 100%; text-size-adjust: 100%; }
body {
  margin: 0;
  background: var(--bg);
  color: var(--fg);
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, "Noto Sans", sans-serif;
  font-size: 1rem;
  line-height: 1.5;
}
code, input.copy-line, .mono {
  font-family: ui-monospace, SFMono-Regular, "SF Mono", Menlo, Consolas, "Liberation Mono", monospace;
  font-size: 0.9em;
}
a { color: var(--accent); }
a:hover { text-decoration-thickness: 2px; }
:focus-visible { outline: 3px solid var(--focus); outline-offset: 2px; }
.skip-link {
  position: absolute;
  left: 0.5rem;
  top: -3rem;
  padding: 0.5rem 1rem;
  background: var(--accent);
  color: var(--accent-fg);
  z-index: 10;
}
.skip-link:focus { top: 0.5rem; }
.visually-hidden {
  position: absolute !important;
  width: 1px;
  height: 1px;
  margin: -1px;
  padding: 0;
  overflow: hidden;
  clip: rect(0 0 0 0);
  white-space: nowrap;
  border: 0;
}
[hidden] { display: none !important; }
.site-header {
  display: flex;
  flex-wrap: wrap;
  align-items: center;
  justify-content: space-between;
  gap: 0.5rem 1rem;
  padding: 0.75rem 1rem;
  border-bottom: 1px solid var(--border);
  background: var(--surface);
}
.brand { font-weight: 700; color: var(--fg); text-decoration: none; }
.session { display: flex; flex-wrap: wrap; align-items: center; gap: 0.5rem; }
.session form { margin: 0; }
main { display: block; max-width: 72rem; margin: 0 auto; padding: 1rem; }
main:focus { outline: none; }
h1 { font-size: 1.5rem; line-height: 1.25; margin: 0.5rem 0 1rem; overflow-wrap: anywhere; }
nav.breadcrumb { margin-bottom: 0.5rem; }
nav.breadcrumb ol { list-style: none; margin: 0; padding: 0; display: flex; flex-wrap: wrap; gap: 0.25rem; }
nav.breadcrumb li + li::before { content: "/"; margin-right: 0.25rem; color: var(--muted); }
label { font-weight: 600; }
input[type="text"], input[type="search"], input[type="password"], input.copy-line {
  font: inherit;
  color: var(--fg);
  background: var(--bg);
  border: 1px solid var(--muted);
  border-radius: 4px;
  padding: 0.5rem;
  min-height: 2.5rem;
  max-width: 100%;
}
button, .button {
  font: inherit;
  display: inline-block;
  min-height: 2.5rem;
  padding: 0.4rem 1rem;
  border-radius: 4px;
  border: 1px solid var(--accent);
  background: var(--accent);
  color: var(--accent-fg);
  cursor: pointer;
  text-decoration: none;
}
button.secondary, .button.secondary { background: transparent; color: var(--accent); }
button.danger { background: var(--danger); border-color: var(--danger); color: var(--danger-fg); }
button.copy { min-height: 2rem; padding: 0.2rem 0.6rem; font-size: 0.875rem; }
.field { display: flex; flex-direction: column; gap: 0.25rem; margin-bottom: 1rem; max-width: 24rem; }
.search { display: flex; flex-wrap: wrap; align-items: flex-end; gap: 0.5rem; margin-bottom: 1rem; }
.search .field { margin-bottom: 0; flex: 1 1 16rem; }
.notice { padding: 0.75rem 1rem; border-radius: 4px; margin: 0 0 1rem; }
.notice.ok { background: var(--ok-bg); color: var(--ok-fg); }
.notice.error { background: var(--error-bg); color: var(--error-fg); }
.muted { color: var(--muted); }
.empty { padding: 1rem; border: 1px dashed var(--border); border-radius: 4px; }
.pager { margin: 1rem 0; }
.copy-group { display: flex; align-items: center; gap: 0.25rem; }
.copy-group input.copy-line { flex: 1 1 auto; min-width: 12rem; }
.actions { display: flex; flex-wrap: wrap; gap: 1rem; align-items: flex-start; margin: 1rem 0; }
.actions form { margin: 0; }
.choice { border: 1px solid var(--border); border-radius: 4px; padding: 1rem; margin: 0 0 1rem; max-width: 48rem; }
.choice h2 { font-size: 1.125rem; margin: 0 0 0.5rem; overflow-wrap: anywhere; }
table { width: 100%; border-collapse: collapse; }
caption { text-align: left; font-weight: 600; padding: 0.5rem 0; }
th, td { text-align: left; vertical-align: top; padding: 0.5rem; border-bottom: 1px solid var(--border); overflow-wrap: anywhere; }
th { background: var(--surface); font-weight: 600; }
ul.platforms { margin: 0; padding-left: 1rem; }
@media (max-width: 640px) {
  table.cards thead { position: absolute; width: 1px; height: 1px; overflow: hidden; clip: rect(0 0 0 0); }
  table.cards, table.cards tbody, table.cards tr, table.cards td, table.cards tbody th { display: block; width: 100%; }
  table.cards tr { border: 1px solid var(--border); border-radius: 4px; margin-bottom: 0.75rem; padding: 0.25rem 0; }
  table.cards td, table.cards tbody th { border: 0; padding: 0.25rem 0.75rem; background: transparent; }
  table.cards tbody th { font-size: 1.125rem; }
  table.cards td[data-label]::before { content: attr(data-label); display: block; font-weight: 600; font-size: 0.875rem; color: var(--muted); }
  .copy-group input.copy-line { min-width: 0; }
}
`;

// ES5 in an IIFE: no module loader, nothing global left behind.
const SCRIPT = `(function () {
  'use strict';
  var announcer = document.getElementById('announcer');
  function announce(text) {
    if (!announcer) return;
    // Cleared first so the same words twice in a row are announced twice.
    announcer.textContent = '';
    window.setTimeout(function () { announcer.textContent = text; }, 50);
  }
  function fieldOf(button) {
    var group = button.closest('.copy-group');
    return group ? group.querySelector('input') : null;
  }
  function selectField(button) {
    var field = fieldOf(button);
    if (!field) return false;
    field.focus();
    field.select();
    try {
      return document.execCommand('copy');
    } catch (e) {
      return false;
    }
  }
  function fallback(button) {
    announce(selectField(button) ? 'Copied' : 'Selected: press Ctrl+C or Cmd+C to copy');
  }
  var buttons = document.querySelectorAll('button[data-copy]');
  for (var i = 0; i < buttons.length; i++) buttons[i].hidden = false;
  document.addEventListener('click', function (event) {
    var target = event.target;
    var button = target && target.closest ? target.closest('button[data-copy]') : null;
    if (!button) return;
    event.preventDefault();
    var text = button.getAttribute('data-copy') || '';
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(function () { announce('Copied'); }, function () { fallback(button); });
    } else {
      fallback(button);
    }
  });
})();
`;

export interface Asset {
  readonly body: Buffer;
  /** The Content-Type to send. */
  readonly type: string;
  /** A strong ETag, quoted. */
  readonly etag: string;
}

function contentHash(body: Buffer): string {
  return createHash('sha256').update(body).digest('hex');
}

function asset(name: string, extension: string, text: string, type: string): [string, Asset] {
  const body = Buffer.from(text, 'utf8');
  const hash = contentHash(body);
  return [`/ui/assets/${name}.${hash.slice(0, 8)}.${extension}`, { body, type, etag: `"${hash.slice(0, 32)}"` }];
}

const stylesheet = asset('app', 'css', CSS, 'text/css; charset=utf-8');
const script = asset('app', 'js', SCRIPT, 'text/javascript; charset=utf-8');

export const STYLESHEET_PATH: string = stylesheet[0];
export const SCRIPT_PATH: string = script[0];

/** Every asset, by the path it is served at; names carry a content hash, so they may be cached immutable. */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([stylesheet, script]);
