// Which request bodies may reach the registry: none it could parse as a form, however the
// Content-Type is spelt. Values are latin1 strings, one character per byte, as Node gives them.
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bodyTypeProblem } from '../../../src/access/body-type.js';

const headers = (...contentTypes: string[]) => ['Host', 'localhost', ...contentTypes.flatMap((value) => ['Content-Type', value])];
/** A header value as Node hands it over: the UTF-8 bytes of `text`, one latin1 character each. */
const bytes = (text: string) => Buffer.from(text, 'utf8').toString('latin1');

describe('bodies real clients send', () => {
  it.each([
    'application/octet-stream',
    'application/json',
    'application/json; charset=utf-8',
    'application/vnd.docker.distribution.manifest.v2+json',
    'application/vnd.docker.distribution.manifest.list.v2+json',
    'application/vnd.docker.distribution.manifest.v1+json',
    'application/vnd.docker.distribution.manifest.v1+prettyjws',
    'application/vnd.oci.image.manifest.v1+json',
    'application/vnd.oci.image.index.v1+json',
    'application/vnd.oci.artifact.manifest.v1+json',
    'Application/Vnd.OCI.Image.Manifest.v1+JSON',
    ' application/octet-stream ',
    '',
    '  ',
  ])('%j passes', (type) => {
    expect(bodyTypeProblem(headers(type))).toBeNull();
  });

  it('no Content-Type passes', () => {
    expect(bodyTypeProblem(['Host', 'localhost', 'Content-Length', '5'])).toBeNull();
  });
});

describe('bodies the registry could read as a form, or that cannot be told apart from one', () => {
  it.each([
    ['a form', 'application/x-www-form-urlencoded'],
    ['multipart', 'multipart/form-data; boundary=x'],
    ['upper case', 'MULTIPART/FORM-DATA; boundary=x'],
    ['U+0130, which Go folds to "i"', bytes('mult\u0130part/form-data; boundary=x')],
    ['U+0130 in "application"', bytes('appl\u0130cation/x-www-form-urlencoded')],
    ['KELVIN SIGN, which Go folds to "k"', bytes('application/vnd.\u212Aind')],
    ['a no-break space, which Go trims', bytes('\u00a0multipart/form-data; boundary=x')],
    ['a latin1 byte', 'application/octet-stream; x=\xe9'],
    ['a DEL byte', 'application/octet-stream\x7f'],
    ['a list', 'application/octet-stream, multipart/form-data; boundary=x'],
    ['parameters without a type', '; boundary=x'],
    ['another type', 'text/plain'],
    ['multipart/mixed', 'multipart/mixed; boundary=x'],
    ['a vendor type outside application/', 'multipart/vnd.x'],
  ])('%s: %j', (_what, type) => {
    expect(bodyTypeProblem(headers(type))).toMatch(/Content-Type/);
  });

  it('two Content-Type headers, whichever comes first', () => {
    expect(bodyTypeProblem(headers('application/octet-stream', 'multipart/form-data; boundary=x'))).toBe('more than one Content-Type header');
    expect(bodyTypeProblem(headers('application/octet-stream', 'application/octet-stream'))).toBe('more than one Content-Type header');
    expect(bodyTypeProblem(['content-type', 'application/json', 'CONTENT-TYPE', 'application/json'])).toBe('more than one Content-Type header');
  });

  it('nothing outside printable ASCII passes, whatever it spells', () => {
    fc.assert(
      fc.property(fc.string(), fc.integer({ min: 0x80, max: 0xff }), (text, byte) => {
        expect(bodyTypeProblem(headers(`application/json${String.fromCharCode(byte)}${text}`))).not.toBeNull();
      }),
    );
  });

  it('what passes never lowercases and trims (as Go does) to a form type', () => {
    const forms = new Set(['application/x-www-form-urlencoded', 'multipart/form-data', 'multipart/mixed']);
    fc.assert(
      fc.property(fc.string({ unit: fc.constantFrom(...'abcdefghijklmnopqrstuvwxyz/-.+; \t=AMPXW\u0130\u212a\u00a0'.split('').map(bytes)) }), (value) => {
        const goMediaType = Buffer.from(value, 'latin1').toString('utf8').split(';')[0]!.toLowerCase().trim();
        if (bodyTypeProblem(headers(value)) === null) expect(forms.has(goMediaType)).toBe(false);
      }),
      { numRuns: 5_000 },
    );
  });
});
