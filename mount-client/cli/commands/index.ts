/**
 * Registry of CLI commands. One module per command family; add a line here when adding one.
 */
import type { RegisterCommand } from '../context.ts';
import { register as cache } from './cache.ts';
import { register as cat } from './cat.ts';
import { register as importCmd } from './import.ts';
import { register as ls } from './ls.ts';
import { register as migrate } from './migrate.ts';
import { register as mount } from './mount.ts';
import { register as quota } from './quota.ts';
import { register as reconcile } from './reconcile.ts';
import { register as rm } from './rm.ts';
import { register as stat } from './stat.ts';
import { register as sync } from './sync.ts';
import { register as token } from './token.ts';
import { register as unmount } from './unmount.ts';
import { register as upload } from './upload.ts';

export const commands: RegisterCommand[] = [
  migrate,
  mount,
  unmount,
  cache,
  reconcile,
  importCmd,
  upload,
  sync,
  ls,
  stat,
  cat,
  rm,
  token,
  quota,
];
