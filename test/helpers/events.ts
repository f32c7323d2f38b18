// Events as the record and the webhooks take them, made up for tests: event number `n` is a push of
// team/app:v<n> by alice, `n` seconds after `start`, with any field given instead.
import type { GatewayEvent } from '../../src/events/event.js';

export function sampleEvent(n: number, fields: Partial<GatewayEvent> = {}, start = Date.UTC(2024, 0, 1)): GatewayEvent {
  return {
    id: n.toString(16).padStart(32, '0'),
    timestamp: new Date(start + n * 1000).toISOString(),
    action: 'push',
    repository: 'team/app',
    tag: `v${n}`,
    digest: `sha256:${n.toString(16).padStart(64, '0')}`,
    mediaType: 'application/vnd.oci.image.manifest.v1+json',
    size: 500 + n,
    user: 'alice',
    address: '192.0.2.7',
    method: 'PUT',
    path: `/v2/team/app/manifests/v${n}`,
    status: 201,
    reason: null,
    via: 'registry',
    ...fields,
  };
}
