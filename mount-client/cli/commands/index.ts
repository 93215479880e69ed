/**
 * Registry of CLI commands. One module per command family; add a line here when adding one.
 */
import type { RegisterCommand } from '../context.ts';
import { register as migrate } from './migrate.ts';

export const commands: RegisterCommand[] = [migrate];
