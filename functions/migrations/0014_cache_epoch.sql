-- Redis cache epoch (functions/adapters/redis/metadata-cache.ts, functions/adapters/pg/cache-epoch.ts).
-- Every Redis cache entry is stamped with the epoch its reader saw, and readers ignore entries of
-- another epoch. A writer whose cache invalidation could not be delivered (Redis down or
-- unreachable, breaker open) advances the epoch here, in the source of truth, so entries written
-- before the outage are never served once Redis is back. A sequence: nextval is one cheap,
-- non-blocking call that no transaction can roll back.
CREATE SEQUENCE IF NOT EXISTS cache_epoch;
