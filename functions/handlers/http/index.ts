export {
  ANONYMOUS,
  type ApiRequest,
  type HttpApiOptions,
  httpApi,
  type RouteDef,
  type Routes,
  respond,
} from './api.ts';
export {
  assertNavigable,
  assertVisible,
  authenticate,
  forgetToken,
  type Principal,
  requireScope,
} from './auth.ts';
export { type Deps, deps, guardRedis, resetDeps, setDeps } from './deps.ts';
export { jsonResponse, mapError, statusFor } from './errors.ts';
export { getLogger, getMetrics, MetricUnit } from './observability.ts';
export { parseWith } from './validation.ts';
