// The authentication module's public API.

export type { AuthResult, Credentials, HtpasswdProblem, HtpasswdUsers, PasswordHash } from './types.js';
export { identifyHash, verifyApr1, verifySha1 } from './hashes.js';
export { parseHtpasswd, formatHtpasswdProblem, readHtpasswdFile, type ParsedHtpasswd } from './htpasswd.js';
export { parseBasicAuthorization, type BasicAuthorization } from './basic.js';
export { createWorkerPool, type WorkerPool, type WorkerPoolOptions } from './worker-pool.js';
export { createCredentialCache, type CredentialCache, type CredentialCacheOptions } from './credential-cache.js';
export {
  createAuthenticator,
  type Authenticator,
  type AuthenticatorOptions,
  type AuthStats,
} from './authenticator.js';
