// `registry-gateway serve`: validate everything, listen, and run until SIGTERM/SIGINT.

import cluster from 'node:cluster';
import { parseServeFlags } from '../config/load.js';
import { SERVE_OPTIONS, formatOptionsHelp } from '../config/options.js';
import { isGatewayError } from '../errors.js';
import { receiveListeningSocket, reportListening, superviseWorkers, type Supervisor } from '../server/cluster.js';
import { startGateway, type RunningGateway } from '../server/gateway.js';
import { expectationsFor, warnAboutUpstream } from '../server/health.js';
import { loadGatewaySetup } from '../server/resources.js';
import { answerMetricsRequests, gatherWorkerSamples } from '../metrics/cluster.js';
import { startMetricsListener, type MetricsListener } from '../metrics/listener.js';
import { mergeSamples } from '../metrics/registry.js';
import type { Config } from '../config/types.js';
import type { Logger } from '../server/logger.js';
import { exposedKeyMode } from '../tls/load.js';
import { createLogger } from '../server/logger.js';
import { certificateCheckLog, scheduleCertificateChecks, type CertificateCheck } from '../tls/renew.js';

export const SERVE_USAGE = `Usage: registry-gateway serve [options]

Terminates TLS, checks HTTP basic auth against an htpasswd file (or, with --auth upstream, leaves
sign-in to the registry) and streams every request to a plain-HTTP Docker registry. Every option
can also be set by its environment variable; a flag wins.

Options:
${formatOptionsHelp(SERVE_OPTIONS)}
  -h, --help  show this help
`;

export async function serve(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  try {
    if (parseServeFlags(argv).help) {
      process.stdout.write(SERVE_USAGE);
      return 0;
    }
    const setup = await loadGatewaySetup(argv, env);
    const { config } = setup;
    const log = createLogger(config.logLevel);
    if (setup.tls.generated && cluster.isPrimary) {
      const { caFile, hosts, ips, instructions } = setup.tls.generated;
      // Plain text where people read it (a JSON log line would show one string of \n escapes).
      process.stderr.write(`\nregistry-gateway: no certificate was found at ${config.tls.certFile}, so one was made, signed by a new CA (${caFile}).\n\n${instructions}\n`);
      log.warn({ ca: caFile, names: [...hosts, ...ips] }, `no certificate was found, so one was made, signed by a new CA in ${caFile} that clients must trust: how was printed to stderr, and registry-gateway certs trust prints it again`);
    }
    if (cluster.isPrimary) logCertificateCheck(log, setup.tls.check);
    // Private keys others can read: the TLS key, and the key that signs tokens.
    // (With --acme the gateway writes its keys itself, 0600; --tls-key names no file then.)
    const keys = [...(config.tls.acme === null ? [config.tls.keyFile] : []), ...(config.token ? [config.token.keyFile] : [])];
    for (const key of cluster.isPrimary ? keys : []) {
      const keyMode = exposedKeyMode(key);
      if (keyMode !== null) log.warn({ key, mode: keyMode }, `the private key ${key} is readable by other users (mode ${keyMode}); restrict it with: chmod 600 ${key}`);
    }
    if (cluster.isPrimary && setup.tokenKeys?.made) {
      log.info({ tokenKey: setup.tokenKeys.file }, `made the key that signs tokens, ${setup.tokenKeys.file} (mode 600): keep it with the certificates; every process and replica given it accepts the others' tokens`);
    }
    if (cluster.isPrimary) for (const warning of setup.tls.warnings) log.warn({ cert: config.tls.certFile }, warning);
    // Taken from here on: a SIGTERM while the gateway is still starting (it may already say it
    // listens) stops it cleanly once started, instead of killing it mid-way.
    const stopSignal = new Promise<NodeJS.Signals>((resolve) => {
      process.once('SIGTERM', () => resolve('SIGTERM'));
      process.once('SIGINT', () => resolve('SIGINT'));
    });
    const clustered = config.workers > 1;
    const listening = clustered && cluster.isWorker ? await receiveListeningSocket() : undefined;
    const gateway = await startGateway(setup, { logger: log, listening });
    // One look at the upstream, in the background: a registry asking for its own login where the
    // gateway does sign-in (or letting anyone in where it does not), or none answering yet.
    if (cluster.isPrimary) void warnAboutUpstream(config.upstream, log, expectationsFor(config.auth));
    // Once a day the primary looks again: a certificate the gateway made is re-issued before it expires.
    const { recheck } = setup.tls;
    const stopCertificateChecks =
      cluster.isPrimary && recheck !== null
        ? scheduleCertificateChecks(() =>
            recheck().then(
              (check) => logCertificateCheck(log, check),
              (err: unknown) => log.warn({ cert: config.tls.certFile }, `re-issuing ${config.tls.certFile} failed (${(err as Error).message}); it is served as it is, and tried again tomorrow`),
            ),
          )
        : null;
    const metrics = await serveMetrics(config, gateway, log).catch(async (err: unknown) => {
      await gateway.close();
      throw err;
    });
    let workers: Supervisor | null = null;
    if (clustered && cluster.isPrimary) {
      workers = superviseWorkers({ workers: config.workers - 1, server: gateway.server, shutdownMs: config.timeouts.shutdownMs, log });
    } else if (clustered) {
      reportListening();
    }
    const onHangup = () => {
      workers?.hangup();
      void gateway.reload();
    };
    process.on('SIGHUP', onHangup);
    const signal = await stopSignal;
    log.info({ signal, graceMs: config.timeouts.shutdownMs }, 'shutting down: finishing in-flight requests');
    process.off('SIGHUP', onHangup);
    stopCertificateChecks?.();
    const workersGone = workers?.stop();
    await Promise.all([gateway.close({ workersGone }), workersGone, metrics?.close()]);
    log.info('stopped');
    log.flush();
    // A cluster worker's channel to the primary would keep it alive; let it go.
    cluster.worker?.disconnect();
    return 0;
  } catch (err) {
    if (!isGatewayError(err)) throw err;
    process.stderr.write(`registry-gateway: ${err.message}\n`);
    for (const problem of err.problems) process.stderr.write(`  - ${problem}\n`);
    return err.exitCode;
  }
}

/**
 * The primary serves /metrics for the whole gateway, adding up what each worker counted; a worker
 * only answers the primary.
 */
async function serveMetrics(config: Config, gateway: RunningGateway, log: Logger): Promise<MetricsListener | null> {
  const { metrics } = gateway;
  if (config.metricsListen === null || metrics === null) return null;
  if (cluster.isWorker) {
    answerMetricsRequests(metrics.samples);
    return null;
  }
  const render = async () => {
    const [own, others] = await Promise.all([metrics.samples(), config.workers > 1 ? gatherWorkerSamples() : []]);
    return metrics.render(mergeSamples([own, ...others]));
  };
  return startMetricsListener(config.metricsListen, render, log);
}

/** What a look at the certificate found, in one line (nothing when all is well). */
function logCertificateCheck(log: Logger, check: CertificateCheck | null): void {
  const line = certificateCheckLog(check);
  if (line !== null) log[line.level](line.fields, line.message);
}
