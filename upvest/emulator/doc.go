// Package emulator is an in-process emulator of the Upvest Investment API,
// for tests (like net/http/httptest) and for `relay demo`.
//
// It behaves as docs/upvest.md describes Upvest on the wire:
//
//   - POST /auth/token (OAuth 2.0 client credentials) and every other call
//     must carry a valid draft-15 HTTP message signature of the tenant
//     (quoted base, ECDSA over SHA-512 or Ed25519), the Upvest headers and,
//     except on the token call, a bearer token with the right scope;
//     failures answer 401 application/problem+json whose detail says what is
//     wrong.
//   - GET /auth/verify_keys publishes the webhook-signing keys as a JWKS;
//     keys can be rotated (RotateKey) and the old one stays published for a
//     while.
//   - /webhooks: list (offset/limit paging), create (always disabled), get,
//     PATCH, DELETE and POST /webhooks/{id}/test, isolated per tenant,
//     with idempotency keys on POST and PATCH.
//   - A delivery engine that cuts published events into packages by each
//     subscription's config.delay and config.max_package_size, sorts each
//     package by created_at, signs it exactly as Upvest signs webhooks
//     (draft-06, unquoted base lines, Digest: SHA-256=…, ECDSA P-521 over
//     SHA-512, DER) and POSTs it, retrying the same bytes forever with back-off
//     1, 2, 3, 5, 8 … 600 s while blocking later packages of that webhook.
//
// Choices where docs/upvest.md is silent are documented on the methods that make
// them; the main ones:
//
//   - A disabled webhook is not offered new events (events published while it
//     is disabled are never delivered to it). Packages already queued for it
//     are held, not dropped, and go out in order once it is enabled again.
//     A deleted webhook's queue is dropped.
//   - POST /webhooks/{id}/test sends one package with a single WEBHOOK.TEST
//     event immediately, outside the queue, whether the webhook is enabled
//     or not, with one attempt and no retry.
//   - The token call needs no idempotency-key (it is an OAuth endpoint);
//     every other POST and PATCH does, and it must be a UUID.
//   - Subscription types are checked against the known families (400 for an
//     unknown one), as Upvest validates against its enum; plain http:// URLs
//     and IP-address hosts are accepted for loopback addresses only, so the
//     relay can run on a laptop.
//
// Everything a Server starts is stopped by Close.
package emulator
