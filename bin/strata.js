#!/usr/bin/env node
// The `strata` CLI runs TypeScript sources through tsx so there is no build step between a
// checkout and a working command. The real entry point is mount-client/cli/main.ts.
import { register } from 'tsx/esm/api';

register();
await import('../mount-client/cli/main.ts');
