// One ACME order with acme-client, and how it talks to the CA: the account (made, or made again
// when the CA has forgotten it), the key and CSR, the challenges handed to the listeners, the
// certificate stored; requests that fail at once when the CA does not answer, with a time limit,
// cut short when the gateway stops; and the CA's problem document, in one line, when it refuses.

import { createRequire } from 'node:module';
import https from 'node:https';
import type { Logger } from 'pino';
import type { AcmeSettings } from '../config/types.js';
import { describeStored, readAccount, writeAccount, writeCertificate, type AcmeFiles, type StoredCertificate } from './acme-store.js';
import type { CertificatePair } from './source.js';

/** A request to the CA that got no answer: refused, reset, timed out, or cut short by close(). */
class CaUnreachable extends Error {
  constructor(
    readonly code: string,
    detail: string,
  ) {
    super(detail);
  }
}

/**
 * Whether an attempt failed for want of an answer from the CA: no answer at all, or a server error
 * (5xx: the CA is there but not working); a problem document otherwise says why it refused.
 */
export function unreachable(err: unknown): boolean {
  if (err instanceof CaUnreachable) return true;
  const e = err as { response?: { status?: number }; code?: unknown };
  if (e.response === undefined) return typeof e.code === 'string';
  return typeof e.response.status === 'number' && e.response.status >= 500;
}

/** Why an ACME attempt failed, in one line: the server's problem document when it sent one, never a stack. */
export function acmeProblem(err: unknown): string {
  const e = err as { message?: string; response?: { data?: { type?: string; detail?: string } }; code?: string };
  if (err instanceof CaUnreachable) return `cannot reach the ACME CA (${err.message})`;
  const problem = e.response?.data;
  if (problem?.detail) return `${problem.detail}${problem.type ? ` (${problem.type})` : ''}`;
  if (e.code !== undefined && e.message !== undefined) return `${e.message}`;
  const line = (e.message ?? String(err)).split('\n')[0]!;
  const type = problemType(err);
  return type === null ? line : `${line} (${type})`;
}

type AcmeModule = typeof import('acme-client');
type AxiosConfig = Parameters<AcmeModule['axios']['request']>[0];
type AxiosAdapter = (config: AxiosConfig) => Promise<unknown>;

// How long one request to the CA may take without an answer (axios waits forever by default).
const REQUEST_TIMEOUT_MS = 30_000;
// Looks at a pending challenge or order: after 1 s, 2 s, 4 s, then every 8 s, for about five minutes.
const POLL_DELAYS_MS = [1_000, 2_000, 4_000, 8_000];
const POLLS = 40;
// What acme-client's own look at a pending item says, with backoffAttempts 1 (one look).
const PENDING = /^(Operation is pending or processing|Unexpected item status)/;

// The abort signal of the order in progress (one at a time per process: only the primary issues).
let attemptSignal: AbortSignal | null = null;
// The last problem document the CA answered in the order in progress. acme-client throws a plain
// Error with the problem's detail and drops its type, which says what the problem is
// (accountDoesNotExist, externalAccountRequired...).
let lastProblem: { readonly type: string; readonly detail: string } | null = null;
let adapterInstalled = false;

/**
 * acme-client's axios retries a request that got no answer five times over 75 s (timers nobody can
 * stop, which held a stopping gateway for a minute), then fails with a TypeError that has lost why.
 * Its requests go instead through the same HTTP adapter wrapped here: a request without an answer
 * fails at once as CaUnreachable (which the retry step passes on untouched, since it carries no
 * request config), with a time limit, and is cut short when the gateway stops. This gateway's own
 * retries (the schedule above) take over. Server errors (5xx, 429) are not retried by acme-client
 * either: they end the attempt with the CA's answer.
 */
function installAdapter(acme: AcmeModule): void {
  if (adapterInstalled) return;
  adapterInstalled = true;
  // The very axios acme-client loads (it is acme-client's dependency, not ours).
  const axios = createRequire(createRequire(import.meta.url).resolve('acme-client'))('axios') as { getAdapter(name: string): AxiosAdapter };
  const http = axios.getAdapter('http');
  // acme-client's own settings on its axios instance (not in its types).
  const defaults = acme.axios.defaults as unknown as { acmeSettings: { retryMaxAttempts: number }; adapter: AxiosAdapter };
  defaults.acmeSettings.retryMaxAttempts = 0;
  defaults.adapter = async (config: AxiosConfig) => {
    const signal = attemptSignal;
    if (signal?.aborted) throw new CaUnreachable('ERR_CANCELED', 'the gateway is stopping');
    try {
      return await http({ ...config, timeout: config.timeout || REQUEST_TIMEOUT_MS, ...(signal === null ? {} : { signal }) });
    } catch (err) {
      const e = err as { response?: { data?: { type?: unknown; detail?: unknown } }; code?: unknown; message?: unknown };
      if (e.response !== undefined) {
        // Raw still: axios parses the body after the adapter.
        const problem = problemDocument(e.response.data);
        if (problem !== null) lastProblem = problem;
        throw err;
      }
      if (signal?.aborted) throw new CaUnreachable('ERR_CANCELED', 'the gateway is stopping');
      const code = typeof e.code === 'string' ? e.code : 'ERR_NETWORK';
      throw new CaUnreachable(code, `${config.method?.toUpperCase() ?? 'GET'} ${config.url ?? ''}: ${typeof e.message === 'string' && e.message !== '' ? e.message : code}`);
    }
  };
}

/** The type and detail of an RFC 7807 problem document, as parsed JSON or as the raw body. */
function problemDocument(data: unknown): { type: string; detail: string } | null {
  let doc = data;
  if (typeof data === 'string' || Buffer.isBuffer(data)) {
    try {
      doc = JSON.parse(data.toString());
    } catch {
      return null;
    }
  }
  const { type, detail } = (doc ?? {}) as { type?: unknown; detail?: unknown };
  return typeof type === 'string' ? { type, detail: typeof detail === 'string' ? detail : '' } : null;
}

/** Waits `ms`, or rejects as soon as `signal` is aborted (no timer left behind). */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(new CaUnreachable('ERR_CANCELED', 'the gateway is stopping'));
    const onAbort = () => {
      clearTimeout(timer);
      reject(new CaUnreachable('ERR_CANCELED', 'the gateway is stopping'));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/** The type of the CA's problem document behind `err`, when it answered one. */
function problemType(err: unknown): string | null {
  const e = err as { response?: { data?: { type?: unknown } }; message?: unknown };
  if (typeof e.response?.data?.type === 'string') return e.response.data.type;
  if (lastProblem !== null && typeof e.message === 'string' && lastProblem.detail !== '' && e.message.includes(lastProblem.detail)) return lastProblem.type;
  return null;
}

/** Whether the CA said the account (by its stored URL) does not exist: it forgot it, or never knew this key. */
function accountUnknown(err: unknown): boolean {
  return problemType(err) === 'urn:ietf:params:acme:error:accountDoesNotExist';
}

/** One order, with a new account when the CA no longer knows the stored one. */
export async function issue(settings: AcmeSettings, files: AcmeFiles, caPem: string | null, challenges: Challenges, log: Logger | null, signal: AbortSignal): Promise<StoredCertificate> {
  // Loaded only when a certificate is due: acme-client brings axios and an X.509 library that a
  // gateway without --acme, or between renewals, has no use for.
  const acme = await import('acme-client');
  installAdapter(acme);
  attemptSignal = signal;
  lastProblem = null;
  try {
    const account = await readAccount(files);
    try {
      return await order(acme, settings, files, caPem, challenges, log, signal, account);
    } catch (err) {
      if (account?.url == null || !accountUnknown(err)) throw err;
      // A CA that lost its accounts (a test CA restarted), or a directory that moved: the same key
      // registers again, and the new account URL replaces the stored one.
      log?.warn({ acme: settings.directoryUrl, account: account.url, reason: acmeProblem(err) }, `the ACME CA does not know the stored account ${account.url}; registering the account key again`);
      return await order(acme, settings, files, caPem, challenges, log, signal, { key: account.key, url: null });
    }
  } finally {
    if (attemptSignal === signal) attemptSignal = null;
  }
}

export interface Challenges {
  readonly alpn: { set(name: string, pair: CertificatePair): void; delete(name: string): void };
  readonly http: Map<string, string>;
}

/** One order: account (made or reused), key and CSR, the challenges answered, the certificate stored. */
async function order(acme: AcmeModule, settings: AcmeSettings, files: AcmeFiles, caPem: string | null, challenges: Challenges, log: Logger | null, signal: AbortSignal, account: { key: string; url: string | null } | null): Promise<StoredCertificate> {
  if (caPem !== null) acme.axios.defaults.httpsAgent = new https.Agent({ ca: caPem });
  const accountKey = account?.key ?? (await acme.crypto.createPrivateEcdsaKey()).toString();
  const client = new acme.Client({
    directoryUrl: settings.directoryUrl,
    accountKey,
    ...(account?.url ? { accountUrl: account.url } : {}),
    ...(settings.eab === null ? {} : { externalAccountBinding: { kid: settings.eab.kid, hmacKey: settings.eab.hmacKey } }),
    // One look per call: the waits between looks are this gateway's (below), which stop with it.
    backoffAttempts: 1,
  });
  const look = client.waitForValidStatus.bind(client);
  client.waitForValidStatus = async (item) => {
    for (let i = 0; ; i++) {
      try {
        return await look(item);
      } catch (err) {
        if (i + 1 >= POLLS || !PENDING.test((err as Error).message ?? '')) throw err;
      }
      await pause(POLL_DELAYS_MS[Math.min(i, POLL_DELAYS_MS.length - 1)]!, signal);
    }
  };
  const [key, csr] = await acme.crypto.createCsr({ commonName: settings.domains[0]!, altNames: [...settings.domains] }, await acme.crypto.createPrivateEcdsaKey());
  const priority = settings.httpListen === null ? ['tls-alpn-01'] : ['http-01', 'tls-alpn-01'];
  const cert = await client.auto({
    csr,
    ...(settings.email === null ? {} : { email: settings.email }),
    termsOfServiceAgreed: true,
    challengePriority: priority,
    // The CA checks; a check of our own from inside would only test our own network.
    skipChallengeVerification: true,
    challengeCreateFn: async (authz, challenge, keyAuthorization) => {
      const name = authz.identifier.value.toLowerCase();
      // acme-client's types predate TLS-ALPN-01; its code answers it.
      const type = challenge.type as string;
      log?.info({ acme: settings.directoryUrl, name, challenge: type }, `ACME ${type} challenge for ${name}`);
      if (type === 'tls-alpn-01') {
        const [alpnKey, alpnCert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization);
        challenges.alpn.set(name, { key: alpnKey.toString(), cert: alpnCert.toString() });
      } else if (type === 'http-01') {
        challenges.http.set(challenge.token, keyAuthorization);
      }
    },
    challengeRemoveFn: async (authz, challenge) => {
      if ((challenge.type as string) === 'tls-alpn-01') challenges.alpn.delete(authz.identifier.value.toLowerCase());
      else if (challenge.type === 'http-01') challenges.http.delete(challenge.token);
    },
  });
  if (account === null || account.url === null) await writeAccount(files, accountKey, client.getAccountUrl());
  const pair = { key: key.toString(), cert };
  await writeCertificate(files, pair);
  return describeStored(pair);
}
