// Package portstest holds in-memory fakes of the driven ports (repositories, Tx, NonceStore,
// RateLimiter, Clock) for service tests, and the contract suites that the fakes and the real
// adapters (pgstore on SQLite and PostgreSQL, redisstore, ratelimit) all run, so that a service
// tested against a fake behaves the same against production storage.
package portstest
