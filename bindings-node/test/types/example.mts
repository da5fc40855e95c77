// Type-checked with `tsc --noEmit` (ESM): the public API as a TypeScript user writes it.
import meterline, {
  ArgumentError,
  Client,
  ConfigError,
  MeterlineError,
  QueueFullError,
  RejectedError,
  StreamError,
  ValidationError,
  type ClientOptions,
  type ConnectionChange,
  type Entitlement,
  type EntitlementSource,
  type Fallbacks,
  type Stats,
  type TrackOptions,
  type UsageThreshold,
} from 'meterline';

const options: ClientOptions = {
  apiKey: process.env.METERLINE_API_KEY ?? 'ml_sk_example_0123456789abcdef0123',
  endpoint: process.env.METERLINE_ENDPOINT ?? 'http://127.0.0.1:8080',
  flushAt: 500,
  flushIntervalMs: 1000,
  overflow: 'drop_oldest',
  compression: 'zstd',
  schemas: { 'api.call': { type: 'object', required: ['tokens'] } },
};

export async function main(): Promise<Stats> {
  await using client = new Client(options);
  client.on('error', (err) => {
    const code: string = err.code;
    if (err instanceof RejectedError) console.error(code, err.path, err.eventId);
    else if (err instanceof ValidationError) console.error(code, err.path);
  });

  const when: TrackOptions = { id: 'order-1', time: new Date() };
  const id: string | null = client.track(
    'api.call',
    'customer-42',
    { tokens: 12, model: 'm-large', at: new Date(), tags: ['a', null] },
    when,
  );
  client.track('api.call', 'customer-42', { tokens: 3, optional: undefined });
  console.log(id);

  try {
    client.track('api.call', 'customer-42', { tokens: -1 });
  } catch (err) {
    if (err instanceof ValidationError) console.log(err.code, err.path);
    else if (err instanceof QueueFullError) console.log('queue full');
    else if (err instanceof MeterlineError) console.log(err.code);
  }

  try {
    new Client({ ...options, flushAt: 0 });
  } catch (err) {
    if (err instanceof ConfigError) console.log(err.option);
  }

  await client.flush(5_000);
  const stats = client.stats();
  const sent: number = stats.sent;
  console.log(sent, meterline.Client === Client);
  return stats;
}

const fallbacks: Fallbacks = {
  features: { sso: true, api_calls: { limit: 100 }, tier: { value: { seats: 3 } } },
  default: false,
};

export async function entitlements(): Promise<Entitlement> {
  await using client = new Client({
    ...options,
    cacheSize: 1_000,
    entitlementTimeoutMs: 500,
    maxStaleMs: 3_600_000,
    maxTtlMs: 60_000,
    stream: true,
    fallbacks,
  });
  client.on('usageThreshold', (e: UsageThreshold) =>
    console.log(e.seq, e.subject, e.feature, e.threshold, e.usage, e.limit),
  );
  client.on('connection', ({ connected, reason }: ConnectionChange) => console.log(connected, reason));
  client.on('error', (err) => {
    if (err instanceof StreamError) console.log('stream', err.code);
  });

  const answer = await client.entitlement('customer-42', 'api_calls');
  const source: EntitlementSource = answer.source;
  const remaining: number | null = answer.remaining;
  if (!answer.hasAccess) console.log(answer.reason ?? 'no access', source, remaining, answer.limit, answer.usage);
  const tier = client.cachedEntitlement('customer-42', 'tier');
  if (tier.kind === 'config') console.log(tier.value, tier.version, tier.periodEnd);

  const token: string = client.customerToken('customer-42', 15 * 60_000);
  const browser = new Client({
    apiKey: 'ml_pk_example_0123456789abcdef0123',
    endpoint: options.endpoint,
    customerToken: token,
  });
  await browser.shutdown();

  client.primeEntitlements({
    subject: 'customer-7',
    version: 1,
    ttl_ms: 60_000,
    entitlements: { sso: { kind: 'boolean', has_access: true } },
  });
  try {
    client.cachedEntitlement('', 'sso');
  } catch (err) {
    if (err instanceof ArgumentError) console.log(err.argument, err.path);
  }
  const { cacheHits, cacheMisses, staleAnswers, fallbackAnswers, streamConnected } = client.stats();
  console.log(cacheHits, cacheMisses, staleAnswers, fallbackAnswers, streamConnected);
  return answer;
}

// @ts-expect-error: a fallback is a boolean, { value } or { limit }
new Client({ ...options, fallbacks: { features: { sso: 'yes' } } });
// @ts-expect-error: entitlement() answers a promise
client0().entitlement('c1', 'sso').hasAccess;
// @ts-expect-error: ttlMs is a number
client0().customerToken('c1', '60s');
function client0(): Client {
  return new Client(options);
}

// @ts-expect-error: data must be an object
new Client(options).track('api.call', 'c1', 'tokens=5');
// @ts-expect-error: unknown option
new Client({ ...options, flushEvery: 5 });
// @ts-expect-error: overflow is a union
new Client({ ...options, overflow: 'explode' });
