// `registry-gateway certs`: make a private CA and the gateway's server certificate, inspect the
// certificate in use, and issue client certificates. Each subcommand returns the exit code.

import { readFile } from 'node:fs/promises';
import { X509Certificate } from 'node:crypto';
import { dirname, join } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { GatewayError, isGatewayError, type ErrorCode } from '../errors.js';
import { clientPort } from '../config/load.js';
import { ACME_DIRECTORIES } from '../config/acme-settings.js';
import { acmeFiles, renewalTime } from '../tls/acme-store.js';
import { parseListen, parsePort, parsePublicUrl } from '../config/validate.js';
import { trustInstructions, trustedNames, writeCertificateSet, writeClientCertificate, writeServerCertificate } from '../tls/cert-files.js';
import { LEAF_DAYS, describeCertificate, normalizeServerNames } from '../tls/certificates.js';
import { describeConstraints, parseCaDomains, readNameConstraints } from '../tls/name-constraints.js';
import { certificateCheckLog, checkServerCertificate, day, namesClientsUse } from '../tls/renew.js';

export const CERTS_USAGE = `Usage: registry-gateway certs <command> [options]

Makes and inspects the gateway's TLS certificates: a private CA, the server certificate it signs,
and client certificates for mutual TLS.

Commands:
  init    make a CA and a server certificate (certs/ca.crt, ca.key, server.crt, server.key)
  server  issue a new server certificate from the CA made by init (new names, or renewal)
  renew   re-issue the server certificate from the same CA when it lacks a name clients use or
          expires within 30 days (what serve does by itself for a certificate it made)
  trust   print again how to make Docker, podman, containerd and the system trust the CA
  show    describe the certificate the gateway serves, and warn when it expires soon
  client  issue a client certificate from the CA made by init

Run registry-gateway certs <command> --help for its options.
`;

const INIT_USAGE = `Usage: registry-gateway certs init --host NAME|--ip ADDR ... [options]

Makes a private CA (RSA 3072, 10 years) and a server certificate signed by it (RSA 2048) for every
name and address given, then prints how to make clients trust the CA. The CA carries name
constraints: it can sign only for those names (each with the names under it), those addresses,
and the --ca-domain suffixes, so its key cannot impersonate other sites.

Options:
  --host NAME         DNS name clients use (repeatable; a wildcard like *.example.com is allowed)
  --ip ADDR           IPv4 or IPv6 address clients use (repeatable)
  --ca-domain SUFFIX  a DNS suffix such as example.com the CA may also sign for, with every name
                      under it, for names added later (repeatable or comma-separated)
  --out DIR           where to write ca.crt, ca.key, server.crt, server.key (default: certs)
  --days N            validity of the server certificate in days (default: ${LEAF_DAYS})
  --port N            the port clients use, for the trust paths printed (default: 443)
  --force             replace files that already exist. This makes a NEW CA, which every client
                      must trust again; for new names from the same CA (clients need no change),
                      use certs renew or certs server instead
  -h, --help          show this help
`;

const SERVER_USAGE = `Usage: registry-gateway certs server --host NAME|--ip ADDR ... [options]

Issues a new server certificate (RSA 2048) from the CA in DIR (ca.crt and ca.key, made by init)
and writes DIR/server.crt and DIR/server.key: for new names, or before the old one expires.
Clients that trust the CA need no change, and a running gateway takes it up within seconds.
Every name must lie within the CA's name constraints (certs show --cert DIR/ca.crt lists them);
for others, make a new CA with certs init --force.

Options:
  --host NAME   DNS name clients use (repeatable)
  --ip ADDR     IPv4 or IPv6 address clients use (repeatable)
  --out DIR     the folder holding ca.crt and ca.key (default: certs)
  --days N      validity in days (default: ${LEAF_DAYS})
  --force       replace server.crt and server.key if they exist
  -h, --help    show this help
`;

const RENEW_USAGE = `Usage: registry-gateway certs renew [options]

Re-issues DIR/server.crt from the CA beside it (DIR/ca.crt and ca.key), keeping every name it has
and adding those clients use that it lacks (--public-url's host, --tls-san), when it lacks any or
expires within 30 days; otherwise it changes nothing. Clients that trust the CA need no change,
and a running gateway takes the new certificate up within seconds. serve does the same at start
and once a day for a certificate it made itself. A name outside the CA's name constraints needs a
new CA (certs init --force), which every client must trust again.

Options:
  --out DIR          the folder holding ca.crt, ca.key, server.crt and server.key (default: certs)
  --public-url URL   the origin clients use, whose host the certificate must cover
                     (default: $GATEWAY_PUBLIC_URL)
  --tls-san NAME     a further name or address clients use (repeatable or comma-separated;
                     default: $GATEWAY_TLS_SANS)
  --days N           validity of a re-issued certificate in days (default: ${LEAF_DAYS})
  -h, --help         show this help
`;

const TRUST_USAGE = `Usage: registry-gateway certs trust [options]

Prints how to make Docker, podman, skopeo, containerd, Docker Desktop (macOS, Windows) and the
system trust the CA in DIR, as a first start prints it: for --public-url's host and port when
given, else for every name of DIR/server.crt on --published-port.

Options:
  --out DIR            the folder holding ca.crt and server.crt (default: certs)
  --public-url URL     the origin clients use, e.g. https://registry.example.com:5443
                       (default: $GATEWAY_PUBLIC_URL)
  --published-port N   the port clients connect to when there is no --public-url
                       (default: $GATEWAY_PUBLISHED_PORT, else the port of $GATEWAY_LISTEN,
                       else 8443, as serve listens); --port N is the same
  -h, --help           show this help
`;

const SHOW_USAGE = `Usage: registry-gateway certs show [--cert FILE | --acme DIRECTORY]

Prints the subject, names, issuer, validity and SHA-256 fingerprint of a certificate, with a
WARNING when it expires within 30 days. Exits 1 when it has expired or is not valid yet. For a
certificate from an ACME CA, also when the gateway renews it.

Options:
  --cert FILE        the certificate (default: $GATEWAY_TLS_CERT, else certs/server.crt)
  --acme DIRECTORY   the certificate the gateway got with --acme DIRECTORY (letsencrypt,
                     letsencrypt-staging or a directory URL; default: $GATEWAY_ACME), kept under
                     the folder of --cert's default (certs/acme)
  -h, --help         show this help
`;

const CLIENT_USAGE = `Usage: registry-gateway certs client --name NAME [options]

Issues a client certificate (RSA 2048, clientAuth) from the CA in DIR and writes DIR/NAME.cert and
DIR/NAME.key, the pair Docker, podman and skopeo pick up from certs.d.

Options:
  --name NAME   who the certificate is for: its common name and file name
  --out DIR     the folder holding ca.crt and ca.key (default: certs)
  --days N      validity in days (default: ${LEAF_DAYS})
  --force       replace NAME.cert and NAME.key if they exist
  -h, --help    show this help
`;

const DEFAULT_DIR = 'certs';
const WARN_DAYS = 30;
const DAY_MS = 86_400_000;

/** Which flag a validation error is about, so the message can name it. */
const FLAG_OF: Partial<Record<ErrorCode, string>> = {
  CERT_HOST_INVALID: '--host',
  CERT_IP_INVALID: '--ip',
  CERT_NAMES_MISSING: '--host/--ip',
  CERT_DAYS_INVALID: '--days',
  CERT_CLIENT_NAME_INVALID: '--name',
};

export async function certs(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  try {
    switch (command) {
      case 'init':
        return await init(rest);
      case 'server':
        return await server(rest);
      case 'renew':
        return await renew(rest, env);
      case 'trust':
        return await trust(rest, env);
      case 'show':
        return await show(rest, env);
      case 'client':
        return await client(rest);
      case '-h':
      case '--help':
      case 'help':
        process.stdout.write(CERTS_USAGE);
        return 0;
      case undefined:
        process.stderr.write(CERTS_USAGE);
        return 2;
      default:
        throw new GatewayError('USAGE', `unknown command "${command}"; see registry-gateway certs --help`);
    }
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    const flag = FLAG_OF[err.code];
    process.stderr.write(`registry-gateway certs: ${flag === undefined ? '' : `${flag}: `}${err.message}\n`);
    for (const problem of err.problems) process.stderr.write(`  - ${problem}\n`);
    return err.exitCode;
  }
}

/** The --host and --ip values of a command that makes a server certificate: at least one. */
function serverNames(host: Values[string], ip: Values[string]): { hosts: string[]; ips: string[] } {
  const hosts = strings(host);
  const ips = strings(ip);
  if (hosts.length === 0 && ips.length === 0) {
    throw new GatewayError('USAGE', 'give at least one --host NAME or --ip ADDR: the names clients will use to reach the gateway');
  }
  return { hosts, ips };
}

async function init(argv: string[]): Promise<number> {
  const flags = parse('init', argv, {
    host: { type: 'string', multiple: true },
    ip: { type: 'string', multiple: true },
    'ca-domain': { type: 'string', multiple: true },
    out: { type: 'string' },
    days: { type: 'string' },
    port: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (flags.help === true) return help(INIT_USAGE);
  const { hosts, ips } = serverNames(flags.host, flags.ip);
  const caDomains = parseCaDomains(strings(flags['ca-domain']));
  if (caDomains.problems.length > 0) throw new GatewayError('USAGE', `--ca-domain: ${caDomains.problems.join('; ')}`);
  const dir = text(flags.out) ?? DEFAULT_DIR;
  const days = count('--days', text(flags.days), 36_500);
  const port = count('--port', text(flags.port), 65_535) ?? 443;
  const force = flags.force === true;
  const files = await writeCertificateSet(dir, { hosts, ips, days, force, caDomains: caDomains.domains });
  const server = describeCertificate(await readFile(files.serverCert, 'utf8'));
  const column = Math.max(...Object.values(files).map((f) => f.length));
  const row = (file: string, what: string) => `  ${file.padEnd(column)}  ${what}\n`;
  process.stdout.write(
    'Wrote\n' +
      row(files.caCert, 'the CA certificate: every client must trust it (see below)') +
      row(files.caKey, 'the CA private key (mode 0600): it signs certificates; the server does not need it (keep it offline, see below)') +
      row(files.serverCert, `the server certificate for ${server.sans.join(', ')}, then the CA`) +
      row(files.serverKey, 'the server private key (mode 0600)') +
      `The server certificate is valid until ${server.notAfter.toISOString()}.\n` +
      `The CA can sign only for ${limitsOf(await readFile(files.caCert, 'utf8'))}.\n` +
      (force
        ? `This is a NEW CA: every client that trusted the one it replaced must trust this one instead (below). To add names\n` +
          `without a new CA, use registry-gateway certs renew or certs server with the CA you keep.\n`
        : '') +
      serveHint(dir, files.serverCert, files.serverKey) +
      '\n' +
      trustInstructions(files.caCert, trustNames(hosts, ips), port),
  );
  return 0;
}

async function server(argv: string[]): Promise<number> {
  const flags = parse('server', argv, {
    host: { type: 'string', multiple: true },
    ip: { type: 'string', multiple: true },
    out: { type: 'string' },
    days: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (flags.help === true) return help(SERVER_USAGE);
  const { hosts, ips } = serverNames(flags.host, flags.ip);
  const dir = text(flags.out) ?? DEFAULT_DIR;
  const days = count('--days', text(flags.days), 36_500);
  const files = await writeServerCertificate(dir, { hosts, ips, days, force: flags.force === true });
  const cert = describeCertificate(await readFile(files.cert, 'utf8'));
  process.stdout.write(
    `Wrote\n  ${files.cert.padEnd(files.key.length)}  the server certificate for ${cert.sans.join(', ')}, valid until ${cert.notAfter.toISOString()}, then the CA\n` +
      `  ${files.key.padEnd(files.cert.length)}  its private key (mode 0600)\n` +
      `Clients that trust ${join(dir, 'ca.crt')} accept it as they are; a running gateway serving these files takes it up within seconds.\n` +
      `Trust paths for a name new to clients (certs.d/HOST:PORT, without :PORT for 443) are as certs init printed them.\n`,
  );
  return 0;
}

/** What a CA may sign for, from its certificate. */
function limitsOf(caPem: string): string {
  const constraints = readNameConstraints(caPem);
  return constraints === null ? 'any name: it has no name constraints' : describeConstraints(constraints);
}

/** The names as they went into the certificate: lower case, each once. */
function trustNames(hosts: string[], ips: string[]): string[] {
  const names = normalizeServerNames(hosts, ips);
  return [...names.hosts, ...names.ips.map((ip) => ip.text)];
}

function serveHint(dir: string, cert: string, key: string): string {
  return dir === DEFAULT_DIR
    ? 'registry-gateway serve uses them by default.\n'
    : `Start the gateway with: registry-gateway serve --tls-cert ${cert} --tls-key ${key}\n`;
}

async function show(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const flags = parse('show', argv, { cert: { type: 'string' }, acme: { type: 'string' } });
  if (flags.help === true) return help(SHOW_USAGE);
  const acme = text(flags.cert) === undefined ? acmeCertificate(text(flags.acme) ?? (env.GATEWAY_ACME || undefined), env) : null;
  const [file, source] = acme ?? certSource(text(flags.cert), env);
  const pem = await readCertificate(file, source, acme === null ? undefined : 'the gateway has not got one from the CA yet (serve --acme gets it at start; its log says how that went), or give --cert FILE');
  const summary = describeCertificate(pem);
  const now = Date.now();
  // Rounded up: a certificate made with --days 10 a moment ago reads "10 days from now".
  const daysLeft = Math.ceil((summary.notAfter.getTime() - now) / DAY_MS);
  process.stdout.write(
    `certificate  ${file} (${source})\n` +
      `subject      ${summary.subject}\n` +
      `names        ${summary.sans.length === 0 ? '(none)' : summary.sans.join(', ')}\n` +
      `issuer       ${summary.issuer}\n` +
      `not before   ${summary.notBefore.toISOString()}\n` +
      `not after    ${summary.notAfter.toISOString()}${daysLeft > 0 ? ` (${plural(daysLeft, 'day')} from now)` : ''}\n` +
      `SHA-256      ${summary.fingerprint256}\n` +
      (summary.isCa ? `may sign     ${caLimits(file, pem)}\n` : '') +
      (acme === null ? '' : `renewal      ${renewalTime(summary).toISOString()} (two thirds into its lifetime; the gateway renews it by itself)\n`),
  );
  if (summary.notAfter.getTime() <= now) {
    process.stderr.write(`registry-gateway certs: the certificate in ${file} expired on ${summary.notAfter.toISOString()}; renew it\n`);
    return 1;
  }
  if (summary.notBefore.getTime() > now) {
    process.stderr.write(`registry-gateway certs: the certificate in ${file} is not valid before ${summary.notBefore.toISOString()}; check the clock\n`);
    return 1;
  }
  if (summary.notAfter.getTime() - now < WARN_DAYS * DAY_MS) {
    process.stdout.write(`WARNING: the certificate expires in ${plural(daysLeft, 'day')}, on ${summary.notAfter.toISOString()}; renew it before then\n`);
  }
  if (!summary.isCa && (await issuedByCaBeside(file, pem))) {
    const dir = dirname(file);
    process.stdout.write(`Clients trust it through ${join(dir, 'ca.crt')}: registry-gateway certs trust${dir === DEFAULT_DIR ? '' : ` --out ${dir}`} prints how.\n`);
  }
  return 0;
}

/** The file of the certificate got with --acme DIRECTORY, and how it was named; null without a directory. */
function acmeCertificate(directory: string | undefined, env: NodeJS.ProcessEnv): [string, string] | null {
  if (directory === undefined) return null;
  const url = ACME_DIRECTORIES[directory.trim().toLowerCase()] ?? directory.trim();
  const folder = join(dirname(env.GATEWAY_TLS_CERT || join(DEFAULT_DIR, 'server.crt')), 'acme');
  return [acmeFiles(folder, url).cert, `the certificate of --acme ${directory}`];
}

/** Whether the CA in the certificate's own folder (ca.crt) issued it. */
async function issuedByCaBeside(file: string, pem: string): Promise<boolean> {
  try {
    const leaf = new X509Certificate(pem);
    const ca = new X509Certificate(await readFile(join(dirname(file), 'ca.crt'), 'utf8'));
    return ca.ca && leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  } catch {
    return false;
  }
}

async function renew(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const flags = parse('renew', argv, {
    out: { type: 'string' },
    'public-url': { type: 'string' },
    'tls-san': { type: 'string', multiple: true },
    days: { type: 'string' },
  });
  if (flags.help === true) return help(RENEW_USAGE);
  const dir = text(flags.out) ?? DEFAULT_DIR;
  const days = count('--days', text(flags.days), 36_500);
  const publicUrl = publicUrlOf(flags, env);
  const sanFlags = strings(flags['tls-san']);
  const sans = sanFlags.length > 0 ? { value: sanFlags.join(','), source: '--tls-san' } : { value: env.GATEWAY_TLS_SANS ?? '', source: 'GATEWAY_TLS_SANS' };
  const { names, problems } = namesClientsUse({
    publicUrl: publicUrl.url,
    publicUrlSource: publicUrl.source,
    extraSans: sans.value.split(',').map((n) => n.trim()).filter((n) => n !== ''),
    extraSansSource: sans.source,
  });
  if (problems.length > 0) throw new GatewayError('USAGE', problems.join('; '));
  const certFile = join(dir, 'server.crt');
  await readCertificate(certFile, '--out', `make one with registry-gateway certs server --out ${dir} (from the CA there) or certs init (a new CA), or give --out DIR`);
  const check = await checkServerCertificate({
    certFile,
    keyFile: join(dir, 'server.key'),
    managed: true,
    wanted: names,
    days,
    port: publicUrl.url === null ? undefined : clientPort(publicUrl.url, null, 443),
  });
  const wanted = [...names.hosts, ...names.ips];
  switch (check?.kind) {
    case undefined:
      throw new GatewayError('CERT_UNREADABLE', `${certFile} holds no certificate that can be read; make one with registry-gateway certs server --out ${dir}`);
    case 'current': {
      const left = Math.ceil((check.notAfter.getTime() - Date.now()) / DAY_MS);
      process.stdout.write(`nothing to do: ${certFile} covers ${(wanted.length > 0 ? wanted : check.names).join(', ')}, and expires on ${day(check.notAfter)} (${plural(left, 'day')} from now)\n`);
      return 0;
    }
    case 'renewed':
      process.stdout.write(
        `Re-issued ${certFile} from the CA in ${check.caFile}: ${[check.added.length > 0 ? `added ${check.added.join(', ')}` : null, check.expiring !== null ? `it was due to expire on ${day(check.expiring)}` : null].filter((r) => r !== null).join('; ')}.\n` +
          `It covers ${check.names.join(', ')} and is valid until ${day(check.notAfter)}.\n` +
          `Clients that trust ${check.caFile} accept it as they are; a running gateway serving these files takes it up within seconds.\n` +
          (check.added.length > 0 ? `For the trust paths of a new name (certs.d/NAME:PORT), run: registry-gateway certs trust${dir === DEFAULT_DIR ? '' : ` --out ${dir}`}\n` : ''),
      );
      return 0;
    case 'new-ca-needed':
      throw new GatewayError('CA_UNUSABLE', certificateCheckLog(check)!.message);
    case 'ca-key-missing':
      throw new GatewayError('CA_MISSING', certificateCheckLog(check)!.message);
    case 'not-ours':
      throw new GatewayError('CA_MISSING', `${certFile} was not issued by the CA in ${dir} (${check.why}), so certs renew leaves it alone; issue one from that CA with registry-gateway certs server --out ${dir} --host NAME --ip ADDR`);
  }
}

async function trust(argv: string[], env: NodeJS.ProcessEnv): Promise<number> {
  const flags = parse('trust', argv, {
    out: { type: 'string' },
    'public-url': { type: 'string' },
    'published-port': { type: 'string' },
    port: { type: 'string' },
  });
  if (flags.help === true) return help(TRUST_USAGE);
  const dir = text(flags.out) ?? DEFAULT_DIR;
  const caFile = join(dir, 'ca.crt');
  await readCertificate(caFile, '--out', 'make a CA with registry-gateway certs init, or give --out DIR: the folder holding ca.crt');
  const publicUrl = publicUrlOf(flags, env);
  const [portText, portSource] =
    text(flags['published-port']) !== undefined
      ? [text(flags['published-port']), '--published-port']
      : text(flags.port) !== undefined
        ? [text(flags.port), '--port']
        : [env.GATEWAY_PUBLISHED_PORT || undefined, 'GATEWAY_PUBLISHED_PORT'];
  let publishedPort: number | null = null;
  if (portText !== undefined) {
    const parsed = parsePort(portText);
    if (!parsed.ok) throw new GatewayError('USAGE', `${portSource}: ${parsed.problem}`);
    publishedPort = parsed.value;
  }
  let names: string[] = [];
  if (publicUrl.url === null) {
    const serverCert = join(dir, 'server.crt');
    const pem = await readFile(serverCert, 'utf8').catch(() => {
      throw new GatewayError('CERT_UNREADABLE', `${serverCert} cannot be read, so the names clients use are unknown; give them with --public-url URL`);
    });
    names = describeCertificate(pem)
      .sans.filter((san) => san.startsWith('DNS:') || san.startsWith('IP:'))
      .map((san) => san.slice(san.indexOf(':') + 1));
  }
  process.stdout.write(trustInstructions(caFile, trustedNames(publicUrl.url, names), clientPort(publicUrl.url, publishedPort, listenPort(env))));
  return 0;
}

/** The port serve listens on with this environment: GATEWAY_LISTEN's, else the default 8443. */
function listenPort(env: NodeJS.ProcessEnv): number {
  if (!env.GATEWAY_LISTEN) return 8443;
  const parsed = parseListen(env.GATEWAY_LISTEN);
  if (!parsed.ok) throw new GatewayError('USAGE', `GATEWAY_LISTEN: ${parsed.problem}`);
  return parsed.value.port;
}

/** --public-url, else GATEWAY_PUBLIC_URL, checked as serve checks it. */
function publicUrlOf(flags: Values, env: NodeJS.ProcessEnv): { url: URL | null; source: string } {
  const flag = text(flags['public-url']);
  const [value, source] = flag !== undefined ? [flag, '--public-url'] : [env.GATEWAY_PUBLIC_URL || undefined, 'GATEWAY_PUBLIC_URL'];
  if (value === undefined) return { url: null, source };
  const parsed = parsePublicUrl(value);
  if (!parsed.ok) throw new GatewayError('USAGE', `${source}: ${parsed.problem}`);
  return { url: parsed.value, source };
}

/** A CA's name constraints in words; a CA made before they existed says how to get them. */
function caLimits(file: string, pem: string): string {
  try {
    const constraints = readNameConstraints(pem);
    return constraints === null
      ? "for any name: it has no name constraints (registry-gateway certs init makes a CA limited to the registry's names)"
      : `only for ${describeConstraints(constraints)}`;
  } catch {
    return `unknown: the name constraints in ${file} cannot be read`;
  }
}

/** The same precedence as serve: the flag, then the variable, then the default path. */
function certSource(flag: string | undefined, env: NodeJS.ProcessEnv): [string, string] {
  if (flag !== undefined) return [flag, '--cert'];
  const fromEnv = env.GATEWAY_TLS_CERT;
  if (fromEnv !== undefined && fromEnv !== '') return [fromEnv, 'GATEWAY_TLS_CERT'];
  return [join(DEFAULT_DIR, 'server.crt'), 'default'];
}

async function readCertificate(file: string, source: string, whenMissing = 'make one with registry-gateway certs init, or give --cert FILE'): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? `does not exist; ${whenMissing}` : `cannot be read (${code ?? String(err)})`;
    throw new GatewayError('CERT_UNREADABLE', `${file} (${source}) ${why}`, { cause: err });
  }
}

async function client(argv: string[]): Promise<number> {
  const flags = parse('client', argv, {
    name: { type: 'string' },
    out: { type: 'string' },
    days: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (flags.help === true) return help(CLIENT_USAGE);
  const name = text(flags.name);
  if (name === undefined) throw new GatewayError('USAGE', '--name NAME is required: who the certificate is for');
  const dir = text(flags.out) ?? DEFAULT_DIR;
  const days = count('--days', text(flags.days), 36_500);
  const files = await writeClientCertificate(dir, name, { days, force: flags.force === true });
  const cert = describeCertificate(await readFile(files.cert, 'utf8'));
  const certsD = `/etc/docker/certs.d/HOST:PORT`;
  process.stdout.write(
    `Wrote\n  ${files.cert.padEnd(files.key.length)}  client certificate for ${cert.subject}, valid until ${cert.notAfter.toISOString()}, then the CA\n` +
      `  ${files.key.padEnd(files.cert.length)}  its private key (mode 0600)\n\n` +
      `On each Docker host that should present it, put the pair beside the CA in ${certsD}/\n` +
      `(HOST:PORT as clients write it, without :PORT for 443):\n` +
      `  sudo install -D -m 644 ${join(dir, 'ca.crt')} ${certsD}/ca.crt\n` +
      `  sudo install -D -m 644 ${files.cert} ${certsD}/${name}.cert\n` +
      `  sudo install -D -m 600 ${files.key} ${certsD}/${name}.key\n` +
      `podman and skopeo read the same three files from /etc/containers/certs.d/HOST:PORT/.\n` +
      `The gateway asks for client certificates when started with --tls-client-ca ${join(dir, 'ca.crt')}.\n`,
  );
  return 0;
}

type Values = Record<string, string | boolean | (string | boolean)[] | undefined>;

/** Strict parsing: an unknown flag, a missing value or a stray argument is a usage error naming it. */
function parse(command: string, argv: string[], options: NonNullable<ParseArgsConfig['options']>): Values {
  try {
    return parseArgs({ args: argv, options: { ...options, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false }).values;
  } catch (err) {
    throw new GatewayError('USAGE', `${(err as Error).message}; see registry-gateway certs ${command} --help`);
  }
}

function help(usage: string): number {
  process.stdout.write(usage);
  return 0;
}

function text(value: Values[string]): string | undefined {
  return typeof value === 'string' ? value : undefined;
}

function strings(value: Values[string]): string[] {
  return Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
}

/** A whole number from 1 to max, or undefined when the flag was not given. */
function count(flag: string, value: string | undefined, max: number): number | undefined {
  if (value === undefined) return undefined;
  const n = /^[0-9]+$/.test(value) ? Number(value) : NaN;
  if (!(n >= 1 && n <= max)) throw new GatewayError('USAGE', `${flag}: "${value}" is not a whole number from 1 to ${max}`);
  return n;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
