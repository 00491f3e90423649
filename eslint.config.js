// Lint rules: type-aware TypeScript checks and the layering between features, ports and adapters.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const adapterModules = [
  'better-sqlite3',
  'kafkajs',
  '@platformatic/kafka',
  'ioredis',
  'pg',
  '@grpc/grpc-js',
  '@starling/adapters',
  '@starling/store',
];

// The OpenTelemetry SDK is started by the composition roots (startTelemetry in services/all-in-one);
// roles and features trace through @opentelemetry/api and @starling/telemetry's helpers only.
const telemetrySdk = [
  '@opentelemetry/sdk-node',
  '@opentelemetry/sdk-trace',
  '@opentelemetry/sdk-trace-base',
  '@opentelemetry/sdk-trace-node',
  '@starling/telemetry/testing',
];
const telemetryMessage = 'Only the composition roots start the OpenTelemetry SDK.';

export default tseslint.config(
  { ignores: ['node_modules/', 'data/', 'dist/', 'coverage/', '**/*.js', '!eslint.config.js'] },
  js.configs.recommended,
  ...tseslint.configs.strictTypeChecked,
  {
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/no-confusing-void-expression': 'off',
      '@typescript-eslint/no-unnecessary-condition': ['error', { allowConstantLoopConditions: true }],
    },
  },
  {
    // Features and the role hosts talk only to ports; adapters are chosen in each service's main.ts.
    files: [
      'libs/features/src/**/*.ts',
      'libs/core/src/**/*.ts',
      'libs/xmpp/src/**/*.ts',
      'libs/ports/src/**/*.ts',
      'services/edge/src/**/*.ts',
      'services/router/src/**/*.ts',
      'services/presence/src/**/*.ts',
      'services/archive/src/**/*.ts',
    ],
    // Unit tests drive features with the real in-process adapters.
    ignores: ['**/*.test.ts', '**/test-*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          paths: [
            ...adapterModules.map((name) => ({
              name,
              message: 'Features reach backends only through the ports.',
            })),
            ...telemetrySdk.map((name) => ({ name, message: telemetryMessage })),
            { name: '@starling/telemetry', importNames: ['startTelemetry'], message: telemetryMessage },
          ],
          patterns: [
            {
              group: ['**/adapters/**', '**/store/src/**'],
              message: 'Features reach backends only through the ports.',
            },
          ],
        },
      ],
    },
  },
  {
    files: ['**/*.test.ts', 'test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
    },
  },
  { files: ['eslint.config.js'], ...tseslint.configs.disableTypeChecked },
);
