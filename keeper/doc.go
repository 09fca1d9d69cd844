// Package keeper is the control loop that keeps the tenant's webhook
// subscription at Upvest registered, enabled and matching configuration.
//
// It is level-triggered: every pass lists all subscriptions (every page),
// finds the one for the configured URL, creates it when missing (Upvest
// creates subscriptions disabled, so it then enables it), re-enables a
// disabled one and patches drifted title, types and config. It never creates
// a second subscription for a URL that already has one, and it never deletes
// or disables anything, not even on shutdown (Upvest queues deliveries while
// the relay is away).
//
// With several replicas on one JetStream, a Lease in a KV bucket makes
// exactly one of them reconcile; standbys make no subscription calls and
// take over within the lease TTL when the holder stops or dies. Upstream
// throttling, 5xx and timeouts back off with jitter and never end the loop.
package keeper
