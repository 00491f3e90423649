// Configuration: defaults, environment overrides (including lists), and errors that name the setting.
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig, parseConfig } from './config.ts';

describe('configuration', () => {
  it('fills every default', () => {
    const config = parseConfig({});
    expect(config.domain).toBe('localhost');
    expect(config.listen).toEqual({
      address: '127.0.0.1',
      c2sPort: 5222,
      directTlsPort: 5223,
      httpPort: 5280,
    });
    expect(config.cluster.kafkaBrokers).toEqual([]);
    expect(config.cluster.metricsPort).toBe(9400);
  });

  it('takes the common settings from the environment, lists comma-separated', () => {
    const config = loadConfig(undefined, {
      STARLING_DOMAIN: 'chat.example',
      STARLING_C2S_PORT: '15222',
      STARLING_KAFKA_BROKERS: 'kafka-0:9092, kafka-1:9092,',
      STARLING_REDIS_CLUSTER_NODES: 'redis-0:6379',
      STARLING_POSTGRES_URL: 'postgres://starling@db/starling',
      STARLING_METRICS_PORT: '9500',
    });
    expect(config.domain).toBe('chat.example');
    expect(config.listen.c2sPort).toBe(15222);
    expect(config.cluster.kafkaBrokers).toEqual(['kafka-0:9092', 'kafka-1:9092']);
    expect(config.cluster.redisClusterNodes).toEqual(['redis-0:6379']);
    expect(config.cluster.postgresUrl).toBe('postgres://starling@db/starling');
    expect(config.cluster.metricsPort).toBe(9500);
  });

  it('names the setting that is wrong', () => {
    expect(() => parseConfig({ cluster: { leaseSeconds: 1 } })).toThrow(/cluster\.leaseSeconds/);
    // Longer than a timer can wait, which Node would fire at once.
    expect(() => parseConfig({ limits: { hibernateSeconds: 3_000_000 } })).toThrow(
      /limits\.hibernateSeconds/,
    );
    expect(() => parseConfig({ limits: { authTimeoutSeconds: 3_000_000 } })).toThrow(
      /limits\.authTimeoutSeconds/,
    );
    expect(() => loadConfig(undefined, { STARLING_METRICS_PORT: 'x' })).toThrow(ConfigError);
    expect(() => loadConfig(undefined, { STARLING_METRICS_PORT: 'x' })).toThrow(/STARLING_METRICS_PORT/);
    expect(() => loadConfig('/nonexistent/starling.yaml', {})).toThrow(/cannot read config file/);
  });
});
