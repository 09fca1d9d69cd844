// Package service runs one relay: it owns the start, the run and the
// ordered stop of everything `relay serve` (and `relay demo`) runs, wired
// together from a Config that says nothing about where its values came
// from (cmd/relay maps the RELAY_* configuration onto it).
//
// New checks the Config and builds what needs no I/O. Run then, in order:
//
//  1. opens the ingress and admin listeners at once, so /healthz answers
//     200 and /readyz and the ingress answer 503 from the first moment,
//     whatever state NATS is in;
//  2. starts the embedded NATS server when no NATS URL is configured;
//  3. dials NATS without waiting: the connection retries forever in the
//     background and logs every failed attempt with its URL and cause;
//  4. starts the verification-key refresh;
//  5. creates or updates the stream once NATS answers, retrying what is
//     transient, and only then lets the ingress store packages and starts
//     the control loop (so Upvest is never pointed at a relay that cannot
//     store yet).
//
// Run returns when its context ends or a component fails for good, after
// stopping in this order: the ingress stops accepting and finishes the
// packages in flight (their PubAcks), then the control loop releases its
// lease and the key refresh stops, then the admin listener closes, then
// the NATS connection is drained, then the embedded server stops.
//
// Accessors (IngressAddr, Conn, KeeperState, ...) are for `relay demo`'s
// live view and for tests; they are valid once Started is closed.
package service
