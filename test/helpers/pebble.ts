// Runs Let's Encrypt's ACME test server (Debian's pebble) with pebble-challtestsrv as its DNS
// server, both on free loopback ports.
//
// Every name resolves to 127.0.0.1, or to `address` when given (A only: no AAAA answers, else
// pebble, which asks AAAA first and dials the first address, would validate on [::1]). Pebble
// validates, on that address,
//   - HTTP-01 with GET http://NAME:httpPort/.well-known/acme-challenge/TOKEN,
//   - TLS-ALPN-01 with a TLS handshake to tlsPort, SNI NAME, ALPN acme-tls/1,
// so a test passes the gateway's own ports as `httpPort`/`tlsPort`. Each challenge is checked three
// times within a few milliseconds (three connections), so the answer must stay up until the
// authorization is valid.
//
// Pebble keeps everything (accounts, orders, its CA) in memory: a restart starts a new CA with new
// root and intermediate certificates, and forgets every account.
import { spawn, type ChildProcess } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeTestPki } from './pki.js';
import { freePort, requireTool } from './tools.js';
import { sleep } from './wait.js';

export interface PebbleOptions {
  /** Port pebble connects to (on `address`) for TLS-ALPN-01: the gateway's HTTPS port. */
  tlsPort: number;
  /** Port pebble connects to (on `address`) for HTTP-01: the gateway's plain-HTTP port. */
  httpPort: number;
  /**
   * The IPv4 address every name resolves to in pebble's DNS (pebble-challtestsrv `-defaultIPv4`),
   * so where pebble connects to validate; 127.0.0.1 by default. A gateway on another address (one
   * Docker verifies TLS for, outside 127.0.0.0/8) is validated there. Pebble itself, its management
   * interface and its DNS server stay on 127.0.0.1.
   */
  address?: string;
  /**
   * `-strict`: challenge POST bodies must be exactly `{}`, and a JWS payload carrying an ACME v1
   * `resource` field is refused.
   */
  strict?: boolean;
  /**
   * Requires external account binding (`externalAccountBindingRequired`) with this one key.
   * `hmacKey` is the MAC key in base64url without padding (as a CA hands it out), e.g.
   * `randomBytes(32).toString('base64url')`.
   */
  externalAccountBinding?: { kid: string; hmacKey: string };
  /**
   * Lifetime of issued certificates in seconds (`certificateValidityPeriod`); pebble's default is
   * 5 years. notBefore is the issuance time (no backdating). An order's own `notAfter` is honoured
   * too, whatever this says.
   */
  certificateValiditySeconds?: number;
  /**
   * `PEBBLE_AUTHZREUSE`: how often (percent) a new order reuses the account's valid authorization
   * for a name instead of asking for a new challenge. 0 by default here (every order is validated);
   * pebble's own default is 50, a coin toss per name.
   */
  authzReusePercent?: number;
  /** `PEBBLE_CHAIN_LENGTH`: 1 (leaf, one intermediate, root) by default; more adds intermediates. */
  chainLength?: number;
  /** `PEBBLE_VA_ALWAYS_VALID=1`: every challenge passes without pebble connecting anywhere. */
  alwaysValid?: boolean;
  /** `domainBlocklist`: orders naming these (or their subdomains) get rejectedIdentifier. */
  domainBlocklist?: string[];
  /** Parent of the temporary folder; the system temp dir by default. */
  parentDir?: string;
}

export interface Pebble {
  /** `https://127.0.0.1:PORT/dir`. */
  readonly directoryUrl: string;
  /** `https://127.0.0.1:PORT` of the management interface (roots, intermediates, cert status). */
  readonly managementUrl: string;
  /** PEM of the CA that signed pebble's own HTTPS certificate (`--acme-ca-cert`). */
  readonly caPem: string;
  /** That CA as a file, in the temporary folder. */
  readonly caCertFile: string;
  /** The UDP/TCP port of the mock DNS server (pebble-challtestsrv) pebble resolves names with. */
  readonly dnsPort: number;
  readonly tlsPort: number;
  readonly httpPort: number;
  /** The address every name resolves to, where pebble validates (127.0.0.1 unless `address` said otherwise). */
  readonly address: string;
  /** The EAB key pebble requires, when asked for. */
  readonly externalAccountBinding: { kid: string; hmacKey: string } | undefined;
  /** Temporary folder: pebble-config.json and the HTTPS PKI. */
  readonly dir: string;
  /** PEM of the root that issued certificates chain to (`/roots/0`); new after every restart. */
  rootPem(): Promise<string>;
  /**
   * PEM of the intermediate that signs leaf certificates (`/intermediates/0`). With `chainLength`
   * above 1 the extra intermediates between it and the root are only in the chains pebble serves.
   */
  intermediatePem(): Promise<string>;
  /**
   * Status of an issued certificate by serial (hex, as `X509Certificate.serialNumber` gives it):
   * `Valid` or `Revoked`; undefined when pebble does not know it.
   */
  certStatus(serialHex: string): Promise<{ Status: string; Serial: string; Certificate: string; Reason?: number; RevokedAt?: string } | undefined>;
  /** Everything both processes printed so far, one section per process. */
  output(): string;
  /**
   * Restarts pebble alone (same ports and config; the DNS server keeps running). Pebble keeps no
   * state: afterwards it has a new root and intermediate and knows no account, order or certificate.
   */
  restart(): Promise<void>;
  /**
   * Takes pebble down (the DNS server keeps running): its port refuses connections, as a CA that is
   * down does, until resume(). Idempotent.
   */
  halt(): Promise<void>;
  /**
   * Brings pebble back after halt(), on the same ports with the same config; resolves once its
   * directory answers. Like restart(): a new root and intermediate, and no account known (a
   * client's stored account URL is unknown to it: accountDoesNotExist).
   */
  resume(): Promise<void>;
  /** Stops both processes and removes the temporary folder. Idempotent. */
  stop(): Promise<void>;
}

const STARTUP_TIMEOUT_MS = 15_000;

interface Proc {
  readonly name: string;
  child: ChildProcess | null;
  out: string;
  exitInfo: string | null;
  exited: Promise<void>;
}

/** Starts pebble-challtestsrv (DNS only) and pebble; resolves once the ACME directory answers. */
export async function startPebble(options: PebbleOptions): Promise<Pebble> {
  const pebbleBin = requireTool('pebble');
  const challtestsrvBin = requireTool('pebble-challtestsrv');
  const address = options.address ?? '127.0.0.1';
  const dir = await mkdtemp(join(options.parentDir ?? tmpdir(), 'rgw-pebble-'));
  const procs: Proc[] = [];
  let removed = false;

  const output = (): string =>
    procs.map((p) => `--- ${p.name}${p.exitInfo === null ? '' : ` (${p.exitInfo})`}\n${p.out}`).join('\n');

  const halt = async (proc: Proc | undefined): Promise<void> => {
    const child = proc?.child;
    if (proc === undefined || child === null || child === undefined) return;
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    await proc.exited;
    clearTimeout(timer);
  };

  const stop = async (): Promise<void> => {
    if (removed) return;
    removed = true;
    await Promise.all(procs.map((p) => halt(p)));
    await rm(dir, { recursive: true, force: true });
  };

  try {
    const pki = await makeTestPki(join(dir, 'pki'), { hosts: ['localhost'], ips: ['127.0.0.1'] });
    const [acmePort, managementPort, dnsPort, dnsManagementPort] = await distinctFreePorts([options.tlsPort, options.httpPort]);
    const directoryUrl = `https://127.0.0.1:${acmePort}/dir`;
    const managementUrl = `https://127.0.0.1:${managementPort}`;
    const configFile = join(dir, 'pebble-config.json');
    await writeFile(configFile, `${JSON.stringify(pebbleConfig({ ...options, acmePort, managementPort, certFile: pki.serverCert, keyFile: pki.serverKey }), null, 2)}\n`);

    const env: Record<string, string> = {
      PATH: process.env.PATH ?? '',
      PEBBLE_VA_NOSLEEP: '1',
      PEBBLE_WFE_NONCEREJECT: '0',
      PEBBLE_AUTHZREUSE: String(options.authzReusePercent ?? 0),
      PEBBLE_CHAIN_LENGTH: String(options.chainLength ?? 1),
      ...(options.alwaysValid === true ? { PEBBLE_VA_ALWAYS_VALID: '1' } : {}),
    };

    const dns = launch('pebble-challtestsrv', challtestsrvBin, [
      '-dns01', `127.0.0.1:${dnsPort}`,
      '-management', `127.0.0.1:${dnsManagementPort}`,
      '-http01', '',
      '-https01', '',
      '-tlsalpn01', '',
      '-defaultIPv4', address,
      '-defaultIPv6', '',
    ], env);
    procs.push(dns);
    await waitUntil(dns, () => dnsAnswers(dnsPort, address), `did not answer DNS queries on 127.0.0.1:${dnsPort}`, output);

    const pebbleArgs = ['-config', configFile, '-dnsserver', `127.0.0.1:${dnsPort}`, ...(options.strict === true ? ['-strict'] : [])];
    let pebble: Proc | undefined;
    const startPebbleProcess = async (): Promise<void> => {
      const proc = launch('pebble', pebbleBin, pebbleArgs, env, dir);
      // Earlier runs stay in the list (stopped), so output() keeps what they printed.
      procs.push(proc);
      pebble = proc;
      await waitUntil(proc, async () => (await httpsGet(directoryUrl, pki.caPem))?.status === 200, `did not answer GET ${directoryUrl}`, output);
    };
    await startPebbleProcess();

    const managementPem = async (path: string): Promise<string> => {
      const res = await httpsGet(`${managementUrl}${path}`, pki.caPem);
      if (res?.status !== 200) throw new Error(`pebble's GET ${managementUrl}${path} answered ${res?.status ?? 'nothing'}\n${output()}`);
      return res.body;
    };

    return {
      directoryUrl,
      managementUrl,
      caPem: pki.caPem,
      caCertFile: pki.caCert,
      dnsPort,
      tlsPort: options.tlsPort,
      httpPort: options.httpPort,
      address,
      externalAccountBinding: options.externalAccountBinding,
      dir,
      rootPem: () => managementPem('/roots/0'),
      intermediatePem: () => managementPem('/intermediates/0'),
      async certStatus(serialHex) {
        // Pebble parses the serial as a big integer and prints it without leading zeros.
        const res = await httpsGet(`${managementUrl}/cert-status-by-serial/${serialHex.replace(/^0+(?=.)/, '').toLowerCase()}`, pki.caPem);
        if (res?.status === 404) return undefined;
        if (res?.status !== 200) throw new Error(`pebble's cert-status-by-serial answered ${res?.status ?? 'nothing'}\n${output()}`);
        return JSON.parse(res.body) as Awaited<ReturnType<Pebble['certStatus']>>;
      },
      output,
      async restart() {
        if (removed) throw new Error('this pebble was stopped for good; start a new one');
        await halt(pebble);
        await startPebbleProcess();
      },
      async halt() {
        if (removed) throw new Error('this pebble was stopped for good; start a new one');
        await halt(pebble);
      },
      async resume() {
        if (removed) throw new Error('this pebble was stopped for good; start a new one');
        if (pebble?.child !== null && pebble?.child !== undefined) throw new Error('pebble is running: halt() it first');
        await startPebbleProcess();
      },
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function pebbleConfig(o: PebbleOptions & { acmePort: number; managementPort: number; certFile: string; keyFile: string }): unknown {
  return {
    pebble: {
      listenAddress: `127.0.0.1:${o.acmePort}`,
      managementListenAddress: `127.0.0.1:${o.managementPort}`,
      certificate: o.certFile,
      privateKey: o.keyFile,
      httpPort: o.httpPort,
      tlsPort: o.tlsPort,
      ocspResponderURL: '',
      externalAccountBindingRequired: o.externalAccountBinding !== undefined,
      ...(o.externalAccountBinding === undefined ? {} : { externalAccountMACKeys: { [o.externalAccountBinding.kid]: o.externalAccountBinding.hmacKey } }),
      ...(o.domainBlocklist === undefined ? {} : { domainBlocklist: o.domainBlocklist }),
      ...(o.certificateValiditySeconds === undefined ? {} : { certificateValidityPeriod: o.certificateValiditySeconds }),
    },
  };
}


function launch(name: string, binary: string, args: string[], env: Record<string, string>, cwd?: string): Proc {
  const child = spawn(binary, args, { env, stdio: ['ignore', 'pipe', 'pipe'], ...(cwd === undefined ? {} : { cwd }) });
  const proc: Proc = { name, child, out: '', exitInfo: null, exited: Promise.resolve() };
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (proc.out += chunk));
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (proc.out += chunk));
  proc.exited = new Promise<void>((resolve) => {
    child.once('exit', (code, signal) => {
      proc.exitInfo = `exit code ${code ?? 'none'}, signal ${signal ?? 'none'}`;
      proc.child = null;
      resolve();
    });
    child.once('error', (err) => {
      proc.exitInfo = `spawn error ${err.message}`;
      proc.child = null;
      resolve();
    });
  });
  return proc;
}

/** Polls `ready` until it holds; throws with every process's output when `proc` exits or time runs out. */
async function waitUntil(proc: Proc, ready: () => Promise<boolean>, what: string, output: () => string): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  for (;;) {
    if (proc.exitInfo !== null) throw new Error(`${proc.name} stopped while starting (${proc.exitInfo}); output:\n${output()}`);
    if (await ready()) return;
    if (Date.now() > deadline) throw new Error(`${proc.name} ${what} within ${STARTUP_TIMEOUT_MS} ms; output:\n${output()}`);
    await sleep(50);
  }
}

/** Whether the mock DNS server answers an A query with the default address, `address`. */
async function dnsAnswers(port: number, address: string): Promise<boolean> {
  const resolver = new Resolver({ timeout: 500, tries: 1 });
  resolver.setServers([`127.0.0.1:${port}`]);
  try {
    return (await resolver.resolve4('ready.rgw.test')).includes(address);
  } catch {
    return false;
  }
}

/** Status and body of a GET trusting `ca`, or null when nothing answered. */
function httpsGet(target: string, ca: string): Promise<{ status: number; body: string } | null> {
  return new Promise((resolve) => {
    const req = request(target, { method: 'GET', ca, timeout: 2_000, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', () => resolve(null));
    });
    req.once('timeout', () => req.destroy());
    req.once('error', () => resolve(null));
    req.end();
  });
}

/** Four distinct ports that were free on 127.0.0.1 a moment ago, none of `taken`. */
async function distinctFreePorts(taken: number[]): Promise<[number, number, number, number]> {
  const ports = new Set<number>();
  while (ports.size < 4) {
    const port = await freePort();
    if (!taken.includes(port)) ports.add(port);
  }
  return [...ports] as [number, number, number, number];
}
