// Type-checked with `tsc --noEmit` (ESM): the public API as a TypeScript user writes it.
import meterline, {
  Client,
  ConfigError,
  MeterlineError,
  QueueFullError,
  ValidationError,
  type ClientOptions,
  type Stats,
  type TrackOptions,
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
    if (err instanceof ValidationError) console.error(code, err.path, err.eventId);
  });

  const when: TrackOptions = { id: 'order-1', time: new Date() };
  const id: string = client.track(
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

// @ts-expect-error: data must be an object
new Client(options).track('api.call', 'c1', 'tokens=5');
// @ts-expect-error: unknown option
new Client({ ...options, flushEvery: 5 });
// @ts-expect-error: overflow is a union
new Client({ ...options, overflow: 'explode' });
