// Package relay is the webhook ingress: it takes the packages Upvest POSTs,
// verifies them, splits them into events and publishes each event to NATS
// JetStream as a CloudEvent, answering 200 only once JetStream has
// acknowledged every message of the package. It also serves the admin
// endpoints (/healthz, /readyz, /metrics) and builds the HTTP servers.
//
// The contract of Handler (docs/contract.md, "Ingress"):
//
//	source outside WithAllowedSources (nothing read)                 403
//	head refused by a HeadVerifier (body never read, conn closed)    401
//	POST on the webhook path, valid signature, every message acked   200
//	the same package again (JetStream dedup on Nats-Msg-Id = event id) 200
//	Verifier error                                                   401
//	Verifier error wrapping verify.ErrKeysUnavailable (transient)    503
//	body over the size limit (nothing read past it, nothing stored)  413
//	signed but not a package: raw body dead-lettered                 200
//	event without a string id or type: that event dead-lettered      200
//	publish error, NATS down, PubAck not in time                     503
//	more verified packages in flight than allowed                    503
//	body read budget spent                                           503
//	body not arrived within its deadline                             400
//	other method                                                     405 (Allow: POST)
//	other path                                                       404
//
// Admission is described at HeadVerifier. The body is checked against
// its signed digest as it arrives and parsed (one validating pass, see
// parsePackage) while the signature's public-key check finishes; nothing
// is published or dead-lettered before both hold. Each event's
// CloudEvent data is the event element of "payload" byte for byte; the
// CloudEvent attributes travel as NATS headers in binary mode (ce-*), their
// values percent-encoded as the CloudEvents NATS binding requires.
// Dead letters go to <prefix>._deadletter with the raw bytes as data, a
// Relay-Deadletter-Reason header, the request id, and a Nats-Msg-Id derived
// from the package's digest and the element's index, so that retries do not
// duplicate them while other packages keep their own; they are CloudEvents
// too (type DeadLetterType) so that a CloudEvents consumer of <prefix>.>
// decodes every message.
//
// Every answer carries X-Request-Id; errors carry a short
// application/problem+json body that never echoes the request. Each
// rejected request is logged once, with its request id, never with its body
// or signature.
//
// Metrics (registered on the Registerer given with WithRegisterer):
// relay_packages_total{result}, relay_events_published_total{family} (the
// families Upvest documents, anything else as "other"),
// relay_events_deduplicated_total (PubAcks flagged duplicate, events and
// dead letters alike), relay_events_deadlettered_total,
// relay_rejections_total{reason} (every non-2xx, by verify.Reason or the
// handler's own reason), relay_package_duration_seconds,
// relay_publish_duration_seconds and relay_batch_packages (packages per
// fast-ingest batch).
//
// Tracing (WithTracerProvider; off by default, and off with a noop
// provider, at no cost): a server span per request, continuing an incoming
// W3C traceparent, with a "verify" child span and a "publish" producer span
// (messaging.* attributes of the OpenTelemetry semantic conventions); every
// message of the package carries the publish span's trace context as the
// CloudEvents distributed-tracing extension (ce-traceparent, and
// ce-tracestate when the trace has a state), and the request's log lines
// carry trace_id.
//
// Admin serves /healthz, /readyz (named checks and details that other
// components add) and /metrics. NewServer builds an *http.Server with
// timeouts; its Shutdown drains in-flight packages, PubAcks included.
//
// A package's messages are stored in package order, across leader
// changes, node loss and retries: a later event of a package is never
// stored before an earlier one (see storeInOrder in publish.go), using
// JetStream's fast-ingest batches where the stream allows them
// (WithBatchPublishing); small packages waiting at the same time share
// a batch.
//
// A non-2xx answer tells Upvest to retry the package later (it retries
// forever and blocks the webhook meanwhile), so only transient trouble
// produces one; whatever was acked before a 503 stays in the stream and the
// retry fills in the rest without duplicates.
package relay
