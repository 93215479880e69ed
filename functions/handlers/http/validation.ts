/**
 * zod at the edge: parse a value or throw ValidationError whose message names each offending field
 * (`query.limit: Too big: expected number to be <=1000`), so a 400 tells the caller what to fix.
 */
import type { z } from 'zod';
import { ValidationError } from '../../core/errors.ts';

export function parseWith<S extends z.ZodType>(schema: S, value: unknown, where: string): z.output<S> {
  const result = schema.safeParse(value);
  if (result.success) return result.data;
  const issues = result.error.issues.map((issue) => {
    const field = [where, ...issue.path.map(String)].filter(Boolean).join('.');
    return `${field}: ${issue.message}`;
  });
  throw new ValidationError(`invalid request: ${issues.join('; ')}`, { cause: result.error });
}
