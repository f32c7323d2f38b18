// The html template escapes everything it did not make itself; sizes and times as the UI shows them.
import { describe, expect, it } from 'vitest';
import { escapeHtml, formatBytes, formatTime, html } from '../../../src/web/html.js';

const NASTY = [`<script>alert(1)</script>`, `"><img src=x onerror=alert(1)>`, `' onmouseover='alert(1)`, '`${x}`', 'a&b'];

describe('escapeHtml', () => {
  it('escapes the six characters that matter in content and quoted attributes', () => {
    expect(escapeHtml(`&<>"'\``)).toBe('&amp;&lt;&gt;&quot;&#39;&#96;');
    expect(escapeHtml('plain text/with:colons')).toBe('plain text/with:colons');
  });
});

describe('html', () => {
  it.each(NASTY)('escapes an interpolated string: %s', (text) => {
    const out = html`<p title="${text}">${text}</p>`.toString();
    expect(out).not.toMatch(/<script|<img/);
    expect(out).toBe(`<p title="${escapeHtml(text)}">${escapeHtml(text)}</p>`);
    // Exactly the two quotes of the template remain: the value cannot end the attribute.
    expect(out.match(/"/g)).toHaveLength(2);
  });

  it('keeps markup it made itself, and joins arrays of it', () => {
    const items = ['a<b', 'c'].map((t) => html`<li>${t}</li>`);
    expect(html`<ul>${items}</ul>`.toString()).toBe('<ul><li>a&lt;b</li><li>c</li></ul>');
    expect(html`${html`<b>x</b>`}`.toString()).toBe('<b>x</b>');
  });

  it('escapes strings inside arrays too', () => {
    expect(html`${['<i>', html`<b>`]}`.toString()).toBe('&lt;i&gt;<b>');
  });

  it('renders numbers, and nothing for null and undefined', () => {
    expect(html`${1}|${0}|${null}|${undefined}|${-2.5}`.toString()).toBe('1|0|||-2.5');
  });

  it('cannot be fooled by an object that only looks like markup', () => {
    const forged = { toString: () => '<script>alert(1)</script>' } as unknown as string;
    expect(html`${forged}`.toString()).toBe('&lt;script&gt;alert(1)&lt;/script&gt;');
  });

  it('turns into a string wherever a string is wanted', () => {
    expect(`${html`<p>${'x'}</p>`}`).toBe('<p>x</p>');
  });
});

describe('formatBytes', () => {
  it.each([
    [0, '0 B'],
    [999, '999 B'],
    [1000, '1 kB'],
    [1536, '1.54 kB'],
    [12_300_000, '12.3 MB'],
    [123_456_789, '123 MB'],
    [999_960, '1 MB'],
    [1_230_000_000, '1.23 GB'],
    [5e15, '5 PB'],
  ])('%d bytes is %s (decimal units, like docker)', (n, text) => {
    expect(formatBytes(n)).toBe(text);
  });

  it('says unknown for what is not a byte count', () => {
    expect(formatBytes(-1)).toBe('unknown');
    expect(formatBytes(Number.NaN)).toBe('unknown');
  });
});

describe('formatTime', () => {
  it('shows a time in UTC to the minute', () => {
    expect(formatTime('2024-05-06T07:08:09.123456789Z')).toBe('2024-05-06 07:08 UTC');
    expect(formatTime('2024-05-06T23:30:00-02:00')).toBe('2024-05-07 01:30 UTC');
  });

  it('gives back text that is not a time unchanged (the page escapes it)', () => {
    expect(formatTime('yesterday')).toBe('yesterday');
  });
});
