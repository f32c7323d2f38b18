// HTML for the web UI, made one way only: the `html` tagged template. Every value interpolated into
// it is escaped, unless it is markup the template itself made (a SafeHtml, or an array of them).
// There is deliberately no `safe()`/`raw()` to mark a string as markup: every string a page shows
// (repository names, tags, labels, user names) comes from a registry or a user, and a way around
// the escaping would sooner or later be used on one of them. Also the UI's formatting of sizes and
// times, which every page shares.

/** Markup made by `html`; only this module can make one (the class is not exported). */
class SafeHtmlValue {
  readonly #markup: string;

  constructor(markup: string) {
    this.#markup = markup;
  }

  toString(): string {
    return this.#markup;
  }
}

export type SafeHtml = SafeHtmlValue;

/** What may be interpolated: text (escaped), numbers, markup from `html`, nothing, or a list of these. */
export type HtmlValue = string | number | SafeHtml | null | undefined | readonly HtmlValue[];

const ESCAPES: Readonly<Record<string, string>> = {
  '&': '&amp;',
  '<': '&lt;',
  '>': '&gt;',
  '"': '&quot;',
  "'": '&#39;',
  // Old IE ended unquoted attribute values at a backtick; escaped so no context treats it as syntax.
  '`': '&#96;',
};

/** Text made safe for element content and for quoted attribute values. */
export function escapeHtml(text: string): string {
  return text.replace(/[&<>"'`]/g, (c) => ESCAPES[c]!);
}

function render(value: HtmlValue): string {
  if (value === null || value === undefined) return '';
  if (value instanceof SafeHtmlValue) return value.toString();
  if (Array.isArray(value)) return (value as readonly HtmlValue[]).map(render).join('');
  // A value outside the declared type (a boolean, an object) still goes through the escaping.
  return escapeHtml(String(value));
}

/** The tagged template: `html\`<td>${name}</td>\`` escapes `name` unless it is itself from `html`. */
export function html(strings: TemplateStringsArray, ...values: readonly HtmlValue[]): SafeHtml {
  let out = strings[0] ?? '';
  values.forEach((value, i) => {
    out += render(value) + (strings[i + 1] ?? '');
  });
  return new SafeHtmlValue(out);
}

// Decimal units, as `docker images` prints sizes (go-units HumanSize: 1 MB = 1000 * 1000 bytes), so
// the UI and the CLI show the same number for the same image.
const UNITS = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'] as const;

/** A byte count as docker prints it, in decimal units with three significant digits: '12.3 MB', '999 B'. */
export function formatBytes(n: number): string {
  if (!Number.isFinite(n) || n < 0) return 'unknown';
  let value = n;
  let unit = 0;
  while (value >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  // 999.96 kB rounds to "1.00e+3" at three digits: that is 1 MB.
  if (Number(value.toPrecision(3)) >= 1000 && unit < UNITS.length - 1) {
    value /= 1000;
    unit += 1;
  }
  return `${Number(value.toPrecision(3))} ${UNITS[unit]}`;
}

/** An ISO 8601 time as 'YYYY-MM-DD HH:MM UTC'; text that is not a time comes back unchanged. */
export function formatTime(iso: string): string {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  const d = new Date(ms);
  const two = (n: number): string => String(n).padStart(2, '0');
  const year = String(d.getUTCFullYear()).padStart(4, '0');
  return `${year}-${two(d.getUTCMonth() + 1)}-${two(d.getUTCDate())} ${two(d.getUTCHours())}:${two(d.getUTCMinutes())} UTC`;
}
