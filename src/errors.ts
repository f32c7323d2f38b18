// One table of the errors the gateway raises on purpose, each with a stable code and exit code.
// Codes are part of the interface: logs and tests match on them, never on messages. docs/
// error-codes.md lists the same; a test keeps the two and the code's uses in step.

export const ERRORS = {
  CONFIG_INVALID: { exitCode: 2, summary: 'invalid configuration' },
  USAGE: { exitCode: 2, summary: 'invalid command line' },
  AUTH_BUSY: { exitCode: 1, summary: 'too many password verifications waiting' },
  AUTH_WORKER_FAILED: { exitCode: 1, summary: 'password verification worker failed' },
  CLIENT_TIMEOUT: { exitCode: 1, summary: 'client stopped sending its request body' },
  UPSTREAM_TIMEOUT: { exitCode: 1, summary: 'upstream registry timed out' },
  LISTEN_FAILED: { exitCode: 1, summary: 'cannot listen' },
  HTPASSWD_USER_INVALID: { exitCode: 2, summary: 'user name cannot be used' },
  HTPASSWD_USER_UNKNOWN: { exitCode: 1, summary: 'no such user in the htpasswd file' },
  HTPASSWD_UNREADABLE: { exitCode: 1, summary: 'htpasswd file cannot be read' },
  HTPASSWD_UNWRITABLE: { exitCode: 1, summary: 'htpasswd file cannot be written' },
  PASSWORD_REFUSED: { exitCode: 1, summary: 'password refused' },
  // 130 is what a shell reports for a command ended by Ctrl-C.
  PASSWORD_PROMPT_CANCELLED: { exitCode: 130, summary: 'password prompt cancelled' },
  CERT_HOST_INVALID: { exitCode: 2, summary: 'host name cannot go in a certificate' },
  CERT_IP_INVALID: { exitCode: 2, summary: 'IP address cannot go in a certificate' },
  CERT_NAMES_MISSING: { exitCode: 2, summary: 'a server certificate needs at least one host name or IP address' },
  CERT_DAYS_INVALID: { exitCode: 2, summary: 'invalid certificate validity' },
  CERT_CLIENT_NAME_INVALID: { exitCode: 2, summary: 'invalid client certificate name' },
  CERT_UNREADABLE: { exitCode: 1, summary: 'certificate cannot be read' },
  CERTS_EXIST: { exitCode: 1, summary: 'certificate files already exist' },
  CA_MISSING: { exitCode: 1, summary: 'no certificate authority found' },
  CA_UNUSABLE: { exitCode: 1, summary: 'certificate authority cannot sign' },
} as const;

export type ErrorCode = keyof typeof ERRORS;

export class GatewayError extends Error {
  readonly code: ErrorCode;
  /** Individual problems, each a complete sentence naming what to fix. */
  readonly problems: readonly string[];

  constructor(code: ErrorCode, message?: string, options?: { problems?: readonly string[]; cause?: unknown }) {
    super(message ?? ERRORS[code].summary, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.problems = options?.problems ?? [];
  }

  get exitCode(): number {
    return ERRORS[this.code].exitCode;
  }
}

export function isGatewayError(err: unknown, code?: ErrorCode): err is GatewayError {
  return err instanceof GatewayError && (code === undefined || err.code === code);
}
