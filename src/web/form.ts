// Reading a small urlencoded form (a sign-in, a token request, a delete): bounded in size and in
// time, and read so that an answer (even 413) can still go out on the request's connection.

import type { IncomingMessage } from 'node:http';

/** Why a form could not be read: answered with its status. */
export class FormError extends Error {
  constructor(
    readonly status: 408 | 413 | 415,
    message: string,
  ) {
    super(message);
  }
}

export interface FormLimits {
  readonly maxBytes: number;
  readonly timeoutMs: number;
  /** What the form is, for messages: "a token request form". */
  readonly what: string;
}

/** The application/x-www-form-urlencoded body of a POST; rejects with FormError. */
export async function readUrlencodedForm(req: IncomingMessage, { maxBytes, timeoutMs, what }: FormLimits): Promise<URLSearchParams> {
  const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase();
  if (type !== 'application/x-www-form-urlencoded') throw new FormError(415, `${what} is application/x-www-form-urlencoded`);
  const declared = Number(req.headers['content-length'] ?? Number.NaN);
  if (declared > maxBytes) throw new FormError(413, `${what} of ${declared} bytes; at most ${maxBytes}`);
  // Read by events, not async iteration: that destroys the request when it ends or breaks off,
  // and the answer must still go out on its connection.
  const body = await new Promise<Buffer>((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (err: FormError | null) => {
      clearTimeout(timer);
      req.off('data', onData).off('end', onEnd).off('error', onError).off('close', onError);
      if (err === null) resolve(Buffer.concat(chunks));
      else reject(err);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size <= maxBytes) chunks.push(chunk);
      else {
        req.pause();
        done(new FormError(413, `${what} over ${maxBytes} bytes`));
      }
    };
    const onEnd = () => done(null);
    const onError = () => done(new FormError(408, `${what} did not arrive`));
    const timer = setTimeout(onError, timeoutMs);
    req.on('data', onData).on('end', onEnd).on('error', onError).on('close', onError);
  });
  return new URLSearchParams(body.toString('utf8'));
}
