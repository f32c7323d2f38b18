import { describe, expect, it } from 'vitest';
import { resolveOptionValues } from '../../../src/config/options.js';
import { parseListen, parseLogLevel, parsePublicUrl, parseRealm, parseSeconds, parseUpstream, parseWorkers } from '../../../src/config/validate.js';

describe('parseListen', () => {
  it('reads IPv4, IPv6 and names', () => {
    expect(parseListen('0.0.0.0:8443')).toEqual({ ok: true, value: { host: '0.0.0.0', port: 8443 } });
    expect(parseListen('[::]:443')).toEqual({ ok: true, value: { host: '::', port: 443 } });
    expect(parseListen('localhost:0')).toEqual({ ok: true, value: { host: 'localhost', port: 0 } });
  });

  it('says what is wrong with a bad value', () => {
    expect(parseListen('8443')).toMatchObject({ ok: false, problem: expect.stringContaining('HOST:PORT') });
    expect(parseListen('0.0.0.0:70000')).toMatchObject({ ok: false, problem: expect.stringContaining('out of range') });
  });
});

describe('parseUpstream', () => {
  it('accepts a plain-HTTP origin', () => {
    const parsed = parseUpstream('http://registry:5000');
    expect(parsed.ok && parsed.value.origin).toBe('http://registry:5000');
  });

  it('refuses other schemes, paths and credentials, saying why', () => {
    expect(parseUpstream('https://registry:5000')).toMatchObject({ ok: false, problem: expect.stringContaining('http://') });
    expect(parseUpstream('http://registry:5000/v2/')).toMatchObject({ ok: false, problem: expect.stringContaining('origin only') });
    expect(parseUpstream('http://u:p@registry:5000')).toMatchObject({ ok: false, problem: expect.stringContaining('credentials') });
    expect(parseUpstream('registry:5000:x')).toMatchObject({ ok: false });
  });
});

describe('parsePublicUrl', () => {
  it('accepts an https origin and refuses anything else', () => {
    expect(parsePublicUrl('https://registry.example.com').ok).toBe(true);
    expect(parsePublicUrl('http://registry.example.com')).toMatchObject({ ok: false, problem: expect.stringContaining('https://') });
    expect(parsePublicUrl('https://registry.example.com/sub')).toMatchObject({ ok: false, problem: expect.stringContaining('origin only') });
  });
});

describe('other values', () => {
  it('refuses a realm that would break the challenge header', () => {
    expect(parseRealm('My "Realm"').ok).toBe(false);
    expect(parseRealm('line\nbreak').ok).toBe(false);
    expect(parseRealm('').ok).toBe(false);
    expect(parseRealm('Registry Realm')).toEqual({ ok: true, value: 'Registry Realm' });
  });

  it('reads log levels and seconds', () => {
    expect(parseLogLevel('DEBUG')).toEqual({ ok: true, value: 'debug' });
    expect(parseLogLevel('loud').ok).toBe(false);
    expect(parseSeconds('1.5')).toEqual({ ok: true, value: 1500 });
    expect(parseSeconds('0').ok).toBe(false);
    expect(parseSeconds('ten').ok).toBe(false);
  });
});

describe('parseWorkers', () => {
  it('reads auto as one per CPU, and a count', () => {
    expect(parseWorkers('auto', 8)).toEqual({ ok: true, value: 7 });
    expect(parseWorkers('auto', 2)).toEqual({ ok: true, value: 1 });
    expect(parseWorkers('auto', 1)).toEqual({ ok: true, value: 1 });
    expect(parseWorkers('3', 8)).toEqual({ ok: true, value: 3 });
    expect(parseWorkers('0', 8).ok).toBe(false);
    expect(parseWorkers('two', 8).ok).toBe(false);
    expect(parseWorkers('65', 8).ok).toBe(false);
  });
});

describe('resolveOptionValues', () => {
  it('lets a flag win over the environment, and the environment over the default', () => {
    const values = resolveOptionValues({ listen: '127.0.0.1:1' }, { GATEWAY_LISTEN: '127.0.0.1:2', GATEWAY_REALM: 'Env Realm' });
    expect(values.listen).toEqual({ value: '127.0.0.1:1', source: '--listen', isDefault: false });
    expect(values.realm).toEqual({ value: 'Env Realm', source: 'GATEWAY_REALM', isDefault: false });
    expect(values.upstream).toEqual({ value: 'http://127.0.0.1:5000', source: '--upstream/GATEWAY_UPSTREAM', isDefault: true });
    expect(values['public-url'].value).toBeNull();
  });
});
