// @ts-check
import eslint from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['node_modules/', 'cdk.out/', 'coverage/', '**/*.d.ts', 'bin/akanda-ci.js'] },
  eslint.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['**/*.js', '**/*.cjs'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { module: 'writable', require: 'readonly', process: 'readonly' },
    },
    rules: { '@typescript-eslint/no-require-imports': 'off' },
  },
  {
    rules: {
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    // The decision core stays pure: no AWS SDK, no network, no filesystem, no child processes.
    files: ['lambda/core/**/*.ts'],
    rules: {
      'no-restricted-imports': [
        'error',
        {
          patterns: [
            { group: ['@aws-sdk/*', 'aws-cdk-lib', 'aws-cdk-lib/*'], message: 'lambda/core is pure: no AWS imports.' },
            {
              group: ['node:*', 'fs', 'http', 'https', 'net', 'child_process', 'dgram', 'tls'],
              message: 'lambda/core is pure: no I/O.',
            },
            {
              group: ['../adapters/*', '../handlers/*', '../local/*', '../node-agent/*'],
              message: 'lambda/core must not depend on the shell.',
            },
          ],
        },
      ],
    },
  },
);
