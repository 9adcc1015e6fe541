// Package ratelimit is refrakt's rate-limiting domain: named limits applied per
// scope (ip, user, tenant, user_tenant, global), a token bucket computed as
// GCRA in integer microseconds, the premium tier, penalties and bans,
// runtime overrides, and the Limiter service that resolves a request to its
// buckets and asks a Store to decide. It knows no HTTP and no Redis: the
// memory and Redis stores live in the subpackages memstore and redisstore and
// pass the same conformance suite (storetest).
package ratelimit
