// The gateway's record of events, shared by every --workers process: the primary alone owns the
// file (events/store.ts) and the webhooks (events/webhooks.ts); a worker sends it each event it
// captured, and asks it who pushed what. One writer keeps the file whole and the webhooks in order.

import cluster from 'node:cluster';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { EventsConfig } from '../config/types.js';
import type { GatewayEvent } from '../events/event.js';
import { openEventStore, type EventStore } from '../events/store.js';
import { invalidConfiguration } from '../config/load.js';
import { createWebhooks, type Webhooks } from '../events/webhooks.js';
import type { GatewayMetrics } from '../metrics/gateway-metrics.js';

const EVENT = 'registry-gateway:event';
const LAST_PUSH = 'registry-gateway:last-push';
const LAST_PUSH_ANSWER = 'registry-gateway:last-push-answer';
/** A worker's question the primary does not answer in this long is taken as "not recorded". */
const ASK_TIMEOUT_MS = 2_000;

export interface EventRecord {
  /** Records an event and sends it to the webhooks; never waits, never throws. */
  add(event: GatewayEvent): void;
  /** The newest push of this tag (or, failing that, digest) in this repository. */
  lastPush(repository: string, tag: string | null, digest: string | null): Promise<GatewayEvent | null>;
  /** Writes what was added and lets the webhooks finish for a moment (the primary: after the workers have gone). */
  close(): Promise<void>;
}

export interface EventRecordOptions {
  readonly config: EventsConfig;
  readonly log: Logger;
  readonly metrics: GatewayMetrics | null;
}

/** The record: the owner's in the primary process (or a gateway of one process), a worker's link to it otherwise. */
export async function openEventRecord(options: EventRecordOptions): Promise<EventRecord> {
  return cluster.isPrimary ? openOwnRecord(options) : workerRecord(options);
}

async function openOwnRecord({ config, log, metrics }: EventRecordOptions): Promise<EventRecord> {
  let store: EventStore;
  try {
    store = await openEventStore({ file: config.file, maxEvents: config.maxEvents, maxAgeMs: config.maxAgeMs, log });
  } catch (err) {
    // The file the user named (or its default) is not usable: said like any other bad setting.
    throw invalidConfiguration([`--events-file/GATEWAY_EVENTS_FILE: ${(err as Error).message}; or point --events-file at a file the gateway may read and write`]);
  }
  const webhooks: Webhooks | null =
    config.webhooks.length === 0
      ? null
      : createWebhooks({
          urls: config.webhooks,
          secret: config.webhookSecret,
          queueLimit: config.webhookQueue,
          log,
          source: { host: hostname(), instance: `${hostname()}:${process.pid}` },
          onDelivered: () => metrics?.webhook('delivered'),
          onFailedAttempt: () => metrics?.webhook('failed'),
          onDropped: () => metrics?.webhook('dropped'),
        });
  // Written by the store, sent on by the webhooks: whichever process captured it.
  const keep = (event: GatewayEvent) => {
    store.append(event).catch(() => undefined); // the store logs what went wrong, naming the file
    webhooks?.send(event);
  };
  const onMessage = (worker: { send(message: unknown): void }, message: unknown) => {
    if (isEventMessage(message)) keep(message.event);
    else if (isLastPushQuestion(message)) {
      worker.send({ type: LAST_PUSH_ANSWER, id: message.id, event: store.lastPush(message.repository, message.tag, message.digest) });
    }
  };
  cluster.on('message', onMessage);
  return {
    add(event) {
      metrics?.eventRecorded(event.action);
      keep(event);
    },
    lastPush: async (repository, tag, digest) => store.lastPush(repository, tag, digest),
    async close() {
      cluster.off('message', onMessage);
      await Promise.all([store.close(), webhooks?.close()]);
    },
  };
}

function workerRecord({ metrics }: EventRecordOptions): EventRecord {
  let nextId = 0;
  const waiting = new Map<number, (event: GatewayEvent | null) => void>();
  const onMessage = (message: unknown) => {
    if (!isLastPushAnswer(message)) return;
    waiting.get(message.id)?.(message.event);
  };
  process.on('message', onMessage);
  return {
    add(event) {
      metrics?.eventRecorded(event.action);
      process.send?.({ type: EVENT, event });
    },
    lastPush(repository, tag, digest) {
      const id = nextId++;
      return new Promise((resolve) => {
        const timer = setTimeout(() => answer(null), ASK_TIMEOUT_MS);
        const answer = (event: GatewayEvent | null) => {
          clearTimeout(timer);
          waiting.delete(id);
          resolve(event);
        };
        waiting.set(id, answer);
        process.send?.({ type: LAST_PUSH, id, repository, tag, digest });
      });
    },
    async close() {
      process.off('message', onMessage);
      for (const answer of [...waiting.values()]) answer(null);
    },
  };
}

interface EventMessage {
  readonly type: typeof EVENT;
  readonly event: GatewayEvent;
}

interface LastPushQuestion {
  readonly type: typeof LAST_PUSH;
  readonly id: number;
  readonly repository: string;
  readonly tag: string | null;
  readonly digest: string | null;
}

interface LastPushAnswer {
  readonly type: typeof LAST_PUSH_ANSWER;
  readonly id: number;
  readonly event: GatewayEvent | null;
}

const typed = (message: unknown, type: string): message is Record<string, unknown> =>
  typeof message === 'object' && message !== null && (message as { type?: unknown }).type === type;

function isEventMessage(message: unknown): message is EventMessage {
  return typed(message, EVENT) && typeof message.event === 'object' && message.event !== null && typeof (message.event as { id?: unknown }).id === 'string';
}

function isLastPushQuestion(message: unknown): message is LastPushQuestion {
  return typed(message, LAST_PUSH) && typeof message.id === 'number' && typeof message.repository === 'string';
}

function isLastPushAnswer(message: unknown): message is LastPushAnswer {
  return typed(message, LAST_PUSH_ANSWER) && typeof message.id === 'number';
}
