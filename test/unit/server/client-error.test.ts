import { describe, expect, it } from 'vitest';
import { clientErrorAnswer, clientErrorResponse } from '../../../src/server/client-error.js';

const err = (code: string) => Object.assign(new Error(code), { code });

describe('answers to requests the parser refuses', () => {
  it('keeps the status Node would give: 431 for oversized headers, 408 for late ones, 400 otherwise', () => {
    expect(clientErrorAnswer(err('HPE_HEADER_OVERFLOW'))).toEqual({ status: 431, reason: 'HPE_HEADER_OVERFLOW' });
    expect(clientErrorAnswer(err('ERR_HTTP_REQUEST_TIMEOUT')).status).toBe(408);
    expect(clientErrorAnswer(err('HPE_CHUNK_EXTENSIONS_OVERFLOW')).status).toBe(413);
    expect(clientErrorAnswer(err('HPE_INVALID_CHUNK_SIZE'))).toEqual({ status: 400, reason: 'HPE_INVALID_CHUNK_SIZE' });
  });

  it('is a whole HTTP response with HSTS, the API version, a registry error body of the stated length, and close', () => {
    const text = clientErrorResponse(400, 600);
    const [head, body] = text.split('\r\n\r\n');
    expect(head!.split('\r\n')[0]).toBe('HTTP/1.1 400 Bad Request');
    expect(head).toContain('\r\nStrict-Transport-Security: max-age=600');
    expect(head).toContain('\r\nDocker-Distribution-API-Version: registry/2.0');
    expect(head).toContain('\r\nConnection: close');
    expect(head).toContain(`\r\nContent-Length: ${Buffer.byteLength(body!)}`);
    expect(JSON.parse(body!)).toEqual({ errors: [{ code: 'UNSUPPORTED', message: 'malformed request', detail: null }] });
    expect(clientErrorResponse(431, 0)).not.toMatch(/strict-transport-security/i);
    expect(clientErrorResponse(431, 0)).toMatch(/^HTTP\/1\.1 431 Request Header Fields Too Large\r\n/);
  });
});
