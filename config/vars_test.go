package config

import (
	"slices"
	"testing"
)

// TestSpecNames pins the names envconfig derives from the spec's field names
// (split_words) to CONTRACT.md's variables, in its order.
func TestSpecNames(t *testing.T) {
	want := []string{
		"RELAY_LISTEN_ADDR", "RELAY_WEBHOOK_PATH", "RELAY_ADMIN_ADDR", "RELAY_NATS_URL", "RELAY_NATS_CREDS",
		"RELAY_DATA_DIR", "RELAY_STREAM", "RELAY_SUBJECT_PREFIX", "RELAY_STREAM_REPLICAS", "RELAY_STREAM_MAX_AGE",
		"RELAY_DUPLICATE_WINDOW", "RELAY_UPVEST_BASE_URL", "RELAY_UPVEST_CLIENT_ID", "RELAY_UPVEST_CLIENT_SECRET",
		"RELAY_UPVEST_SIGNING_KEY_FILE", "RELAY_UPVEST_SIGNING_KEY_ID", "RELAY_VERIFY_KEYS_FILE",
		"RELAY_SIGNATURE_MAX_AGE", "RELAY_CLOCK_SKEW", "RELAY_MAX_BODY_BYTES", "RELAY_WEBHOOK_URL",
		"RELAY_WEBHOOK_TITLE", "RELAY_WEBHOOK_TYPES", "RELAY_WEBHOOK_DELAY", "RELAY_WEBHOOK_MAX_PACKAGE_SIZE",
		"RELAY_RECONCILE_INTERVAL", "RELAY_LOG_LEVEL", "RELAY_LOG_FORMAT",
	}
	var c Config
	if got := c.spec().names(); !slices.Equal(got, want) {
		t.Errorf("spec names = %q, want %q", got, want)
	}
}
