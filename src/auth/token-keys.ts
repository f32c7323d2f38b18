// The keys that sign and check the gateway's bearer tokens. One private key file (`--token-key`,
// default certs/token.key), made on the first start in token mode (EC P-256, mode 0600), read by
// every --workers process and by every replica given the same file, so each accepts the others'
// tokens. Rotation: the file moved to FILE.previous before a restart, and a new key is made; tokens
// signed with the previous key are still accepted until they expire (or until that file is removed).

import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, exportJWK, type JWK } from 'jose';
import { readOptionalFile, writeNewSecretFile } from '../config/read-optional.js';

export interface SigningKey {
  readonly key: KeyObject;
  readonly alg: TokenAlgorithm;
  /** The JWK thumbprint of the public key (RFC 7638): what a token's `kid` names. */
  readonly kid: string;
}

export type TokenAlgorithm = 'ES256' | 'RS256' | 'EdDSA';

export interface TokenKeys {
  readonly file: string;
  readonly signing: SigningKey;
  /** Public keys tokens may be signed with: the current one, and the previous one when kept. */
  readonly verifying: readonly JWK[];
  /** Set when this start made the key file. */
  readonly made: boolean;
}

export type OpenedTokenKeys = { readonly keys: TokenKeys; readonly problems: readonly [] } | { readonly keys: null; readonly problems: readonly string[] };

/** Where the previous key is kept during a rotation. */
export function previousKeyFile(file: string): string {
  return `${file}.previous`;
}

/**
 * Reads the signing key (and the previous one, when its file exists). A missing key file is made
 * (`make`: the one process that starts first, when nothing else stops the start), a problem naming
 * the option and what to do (`problem`), or not looked for further (`ignore`: other problems stop
 * the start anyway).
 */
export async function openTokenKeys(file: string, source: string, options: { readonly missing: 'make' | 'problem' | 'ignore' }): Promise<OpenedTokenKeys> {
  let pem = await readOptionalFile(file);
  let made = false;
  if (pem === null) {
    if (options.missing === 'ignore') return { keys: null, problems: [] };
    if (options.missing === 'problem') return { keys: null, problems: [`${source}: ${file} does not exist; start the gateway once to make it, or give a PEM private key (EC P-256, RSA or Ed25519)`] };
    pem = await makeKeyFile(file);
    made = pem !== null;
    // Another process made it first (two replicas started at once): use theirs.
    pem ??= await readFile(file, 'utf8');
  }
  const signing = await signingKey(pem);
  if (typeof signing === 'string') return { keys: null, problems: [`${source}: ${file}: ${signing}`] };
  const verifying = [await publicJwk(signing)];
  const previousFile = previousKeyFile(file);
  const previousPem = await readOptionalFile(previousFile);
  if (previousPem !== null) {
    const previous = await signingKey(previousPem);
    if (typeof previous === 'string') return { keys: null, problems: [`${source}: ${previousFile} (the previous token key): ${previous}; remove it, or put the previous key back`] };
    if (previous.kid !== signing.kid) verifying.push(await publicJwk(previous));
  }
  return { keys: Object.freeze({ file, signing, verifying: Object.freeze(verifying), made }), problems: [] };
}

/** Writes a new P-256 key, only if no file is there yet; null when one appeared meanwhile. */
async function makeKeyFile(file: string): Promise<string | null> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const pem = privateKey.export({ type: 'pkcs8', format: 'pem' }) as string;
  return (await writeNewSecretFile(file, pem)) ? pem : null;
}

/** The key and the algorithm it signs with, or why it cannot sign tokens. */
async function signingKey(pem: string): Promise<SigningKey | string> {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch {
    return 'not a PEM private key';
  }
  const alg = algorithmOf(key);
  if (alg === null) return `a ${key.asymmetricKeyType} key${key.asymmetricKeyDetails?.namedCurve ? ` on ${key.asymmetricKeyDetails.namedCurve}` : ''}; token keys are EC P-256, RSA of 2048 bits or more, or Ed25519`;
  const jwk = await exportJWK(createPublicKey(key));
  return { key, alg, kid: await calculateJwkThumbprint(jwk) };
}

function algorithmOf(key: KeyObject): TokenAlgorithm | null {
  const details = key.asymmetricKeyDetails;
  if (key.asymmetricKeyType === 'ec' && details?.namedCurve === 'prime256v1') return 'ES256';
  if (key.asymmetricKeyType === 'rsa' && (details?.modulusLength ?? 0) >= 2048) return 'RS256';
  if (key.asymmetricKeyType === 'ed25519') return 'EdDSA';
  return null;
}

async function publicJwk(signing: SigningKey): Promise<JWK> {
  return { ...(await exportJWK(createPublicKey(signing.key))), kid: signing.kid, alg: signing.alg, use: 'sig' };
}
