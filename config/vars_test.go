package config

import (
	"slices"
	"testing"
)

// TestNames pins the variables and their order (Usage's, the log view's and
// the reference's).
func TestNames(t *testing.T) {
	t.Parallel()
	want := []string{
		"RELAY_LISTEN_ADDR", "RELAY_WEBHOOK_PATH", "RELAY_ADMIN_ADDR",
		"RELAY_TLS_CERT_FILE", "RELAY_TLS_KEY_FILE", "RELAY_ALLOWED_SOURCES", "RELAY_TRUSTED_PROXIES",
		"RELAY_NATS_URL", "RELAY_NATS_CREDS",
		"RELAY_NATS_TLS_CA_FILE", "RELAY_NATS_TLS_CERT_FILE", "RELAY_NATS_TLS_KEY_FILE",
		"RELAY_DATA_DIR", "RELAY_EMBEDDED_SYNC", "RELAY_STREAM", "RELAY_SUBJECT_PREFIX", "RELAY_STREAM_REPLICAS", "RELAY_STREAM_MAX_AGE",
		"RELAY_DUPLICATE_WINDOW", "RELAY_UPVEST_BASE_URL", "RELAY_UPVEST_CLIENT_ID", "RELAY_UPVEST_CLIENT_SECRET",
		"RELAY_UPVEST_SIGNING_KEY_FILE", "RELAY_UPVEST_SIGNING_KEY_ID", "RELAY_VERIFY_KEYS_FILE",
		"RELAY_SIGNATURE_MAX_AGE", "RELAY_CLOCK_SKEW", "RELAY_MAX_BODY_BYTES", "RELAY_WEBHOOK_URL",
		"RELAY_WEBHOOK_TITLE", "RELAY_WEBHOOK_TYPES", "RELAY_WEBHOOK_DELAY", "RELAY_WEBHOOK_MAX_PACKAGE_SIZE",
		"RELAY_RECONCILE_INTERVAL", "RELAY_LOG_LEVEL", "RELAY_LOG_FORMAT",
	}
	if got := Names(); !slices.Equal(got, want) {
		t.Errorf("Names() = %q, want %q", got, want)
	}
}

// TestEveryDefaultDecodes checks that each variable's default passes its
// own parser and that what the log view shows for it decodes to the same.
func TestEveryDefaultDecodes(t *testing.T) {
	t.Parallel()
	var c Config
	for _, v := range variables {
		f := v.field(&c)
		if err := f.Decode(v.def); err != nil {
			t.Errorf("%s: default %q: %v", v.name, v.def, err)
			continue
		}
		var again Config
		shown := f.String()
		if err := v.field(&again).Decode(shown); err != nil || v.field(&again).String() != shown {
			t.Errorf("%s: default %q shows as %q, which does not decode to the same: %v", v.name, v.def, shown, err)
		}
	}
}

func TestClosest(t *testing.T) {
	t.Parallel()
	for name, want := range map[string]string{
		"RELAY_LISTN_ADDR":            "RELAY_LISTEN_ADDR",
		"RELAY_LISTEN_ADR":            "RELAY_LISTEN_ADDR",
		"RELAY_stream":                "RELAY_STREAM",
		"RELAY_UPVEST_CLIENT_SECRT":   "RELAY_UPVEST_CLIENT_SECRET",
		"RELAY_NATS_TLS_CERTFILE":     "RELAY_NATS_TLS_CERT_FILE",
		"RELAY_ALLOWED_SOURCE":        "RELAY_ALLOWED_SOURCES",
		"RELAY_AAA":                   "",
		"RELAY_SOMETHING_ELSE_ENTIRE": "",
		"RELAY_":                      "",
	} {
		if got := closest(name); got != want {
			t.Errorf("closest(%q) = %q, want %q", name, got, want)
		}
	}
}
