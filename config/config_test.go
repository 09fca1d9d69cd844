package config_test

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/config"
)

// load runs config.FromEnviron on env, so that tests can run in parallel.
func load(t *testing.T, env ...string) (config.Config, error) {
	t.Helper()
	return config.FromEnviron(env)
}

// TestDefaults checks Load with no RELAY_* variable set against
// docs/configuration.md.
func TestDefaults(t *testing.T) {
	t.Parallel()
	got, err := load(t)
	if err != nil {
		t.Fatalf("Load error = %v, want nil", err)
	}
	want := config.Config{
		ListenAddr:            ":8080",
		WebhookPath:           "/webhooks/upvest",
		AdminAddr:             ":9090",
		MaxBodyBytes:          16777216,
		NATSURL:               "",
		NATSCreds:             "",
		DataDir:               "./data",
		Stream:                "UPVEST",
		SubjectPrefix:         "upvest",
		StreamReplicas:        1,
		StreamMaxAge:          720 * time.Hour,
		DuplicateWindow:       2 * time.Hour,
		UpvestBaseURL:         "https://sandbox.upvest.co",
		UpvestClientID:        "",
		UpvestClientSecret:    config.Secret{},
		UpvestSigningKeyFile:  "",
		UpvestSigningKeyID:    "",
		VerifyKeysFile:        "",
		SignatureMaxAge:       5 * time.Minute,
		ClockSkew:             30 * time.Second,
		WebhookURL:            "",
		WebhookTitle:          "upvest-relay",
		WebhookTypes:          []string{"ALL"},
		WebhookDelay:          "5s",
		WebhookMaxPackageSize: 1048576,
		ReconcileInterval:     time.Minute,
		LogLevel:              zerolog.InfoLevel,
		LogFormat:             "json",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
}

// writeFile creates a file under t.TempDir and returns its path.
func writeFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte("content"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadEveryVariable(t *testing.T) {
	t.Parallel()
	key := writeFile(t, "key.pem")
	jwks := writeFile(t, "jwks.json")
	creds := writeFile(t, "nats.creds")
	environ := []string{
		"PATH=/usr/bin", // not ours: ignored
		"RELAY_LISTEN_ADDR=127.0.0.1:18080",
		"RELAY_WEBHOOK_PATH=/hooks/upvest/",
		"RELAY_ADMIN_ADDR=127.0.0.1:19090",
		"RELAY_NATS_URL=nats://a:4222, tls://b:4222",
		"RELAY_NATS_CREDS=" + creds,
		"RELAY_DATA_DIR=/var/lib/relay",
		"RELAY_STREAM=UPVEST_EVENTS",
		"RELAY_SUBJECT_PREFIX=acme.upvest",
		"RELAY_STREAM_REPLICAS=3",
		"RELAY_STREAM_MAX_AGE=48h",
		"RELAY_DUPLICATE_WINDOW=24h",
		"RELAY_UPVEST_BASE_URL=https://api.upvest.co/",
		"RELAY_UPVEST_CLIENT_ID=client-1",
		"RELAY_UPVEST_CLIENT_SECRET=hunter2",
		"RELAY_UPVEST_SIGNING_KEY_FILE=" + key,
		"RELAY_UPVEST_SIGNING_KEY_ID=kid-1",
		"RELAY_VERIFY_KEYS_FILE=" + jwks,
		"RELAY_SIGNATURE_MAX_AGE=10m",
		"RELAY_CLOCK_SKEW=1s",
		"RELAY_MAX_BODY_BYTES=1024",
		"RELAY_WEBHOOK_URL=https://relay.example.com/hooks/upvest/",
		"RELAY_WEBHOOK_TITLE=Relay (prod) [eu]",
		"RELAY_WEBHOOK_TYPES=ORDER, EXECUTION,SOME_NEW_FAMILY",
		"RELAY_WEBHOOK_DELAY=2m",
		"RELAY_WEBHOOK_MAX_PACKAGE_SIZE=100",
		"RELAY_RECONCILE_INTERVAL=30s",
		"RELAY_LOG_LEVEL=DEBUG",
		"RELAY_LOG_FORMAT=console",
	}
	got, err := load(t, environ...)
	if err != nil {
		t.Fatalf("Load error = %v, want nil", err)
	}
	want := config.Config{
		ListenAddr:            "127.0.0.1:18080",
		WebhookPath:           "/hooks/upvest/",
		AdminAddr:             "127.0.0.1:19090",
		MaxBodyBytes:          1024,
		NATSURL:               "nats://a:4222, tls://b:4222",
		NATSCreds:             creds,
		DataDir:               "/var/lib/relay",
		Stream:                "UPVEST_EVENTS",
		SubjectPrefix:         "acme.upvest",
		StreamReplicas:        3,
		StreamMaxAge:          48 * time.Hour,
		DuplicateWindow:       24 * time.Hour,
		UpvestBaseURL:         "https://api.upvest.co",
		UpvestClientID:        "client-1",
		UpvestClientSecret:    config.NewSecret("hunter2"),
		UpvestSigningKeyFile:  key,
		UpvestSigningKeyID:    "kid-1",
		VerifyKeysFile:        jwks,
		SignatureMaxAge:       10 * time.Minute,
		ClockSkew:             time.Second,
		WebhookURL:            "https://relay.example.com/hooks/upvest/",
		WebhookTitle:          "Relay (prod) [eu]",
		WebhookTypes:          []string{"ORDER", "EXECUTION", "SOME_NEW_FAMILY"},
		WebhookDelay:          "2m",
		WebhookMaxPackageSize: 100,
		ReconcileInterval:     30 * time.Second,
		LogLevel:              zerolog.DebugLevel,
		LogFormat:             "console",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load = %+v, want %+v", got, want)
	}
	if got.UpvestClientSecret.Reveal() != "hunter2" {
		t.Errorf("UpvestClientSecret.Reveal() = %q, want %q", got.UpvestClientSecret.Reveal(), "hunter2")
	}
}

// TestLoadReadsOnlyPrefixedNames checks that names without the prefix,
// even a variable's own name without it (envconfig's fallback for
// envconfig:"NAME" tags), configure nothing.
func TestLoadReadsOnlyPrefixedNames(t *testing.T) {
	t.Parallel()
	got, err := load(t, "STREAM=OTHER", "LOG_LEVEL=verbose", "DATA_DIR=", "LISTEN_ADDR=x", "RELAY_STREAM=MINE")
	if err != nil {
		t.Fatalf("Load error = %v, want nil", err)
	}
	if got.Stream != "MINE" || got.LogLevel != zerolog.InfoLevel || got.DataDir != "./data" || got.ListenAddr != ":8080" {
		t.Errorf("Load = %+v, want RELAY_STREAM and defaults only", got)
	}
}

// TestLoadSetButEmpty checks envconfig's rule: a variable set to "" is
// empty, not its default.
func TestLoadSetButEmpty(t *testing.T) {
	t.Parallel()
	got, err := load(t, "RELAY_UPVEST_BASE_URL=https://api.upvest.co", "RELAY_WEBHOOK_URL=", "RELAY_NATS_URL=")
	if err != nil {
		t.Fatalf("Load error = %v, want nil", err)
	}
	if got.WebhookURL != "" || got.NATSURL != "" || got.UpvestBaseURL != "https://api.upvest.co" {
		t.Errorf("Load = %+v, want empty RELAY_WEBHOOK_URL and RELAY_NATS_URL", got)
	}
	// Set but empty where the default is not: "" is checked, not replaced
	// by the default.
	_, err = load(t, "RELAY_LOG_LEVEL=")
	checkError(t, err, config.ErrInvalid, "RELAY_LOG_LEVEL")
}

func TestLoadUnknown(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		environ []string
		wantVar string
	}{
		{"typo", []string{"RELAY_LISTEN_ADR=:1"}, "RELAY_LISTEN_ADR"},
		{"first in sorted order", []string{"RELAY_ZZZ=1", "RELAY_AAA=1", "RELAY_STREAM=X"}, "RELAY_AAA"},
		{"empty value", []string{"RELAY_NOPE="}, "RELAY_NOPE"},
		{"prefix only", []string{"RELAY_=x"}, "RELAY_"},
		{"case matters", []string{"RELAY_stream=X"}, "RELAY_stream"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.environ...)
			checkError(t, err, config.ErrUnknown, tt.wantVar)
		})
	}
}

// checkError checks that err is a one-line *Error for variable name that
// wraps sentinel.
func checkError(t *testing.T, err, sentinel error, name string) {
	t.Helper()
	if !errors.Is(err, sentinel) {
		t.Fatalf("Load error = %v, want one wrapping %v", err, sentinel)
	}
	var ce *config.Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load error = %T, want *config.Error", err)
	}
	if ce.Var != name {
		t.Errorf("Error.Var = %q, want %q", ce.Var, name)
	}
	msg := err.Error()
	if want := "config: " + name + ": "; !strings.HasPrefix(msg, want) {
		t.Errorf("Load error = %q, want prefix %q", msg, want)
	}
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("Load error = %q, want one line", msg)
	}
}

func TestLoadInvalid(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		env     string // NAME=value
		wantMsg string // "" to skip; else the whole message
	}{
		{"RELAY_LISTEN_ADDR=8080", `config: RELAY_LISTEN_ADDR: must be host:port, such as :8080 or 127.0.0.1:8080, got "8080"`},
		{"RELAY_LISTEN_ADDR=:http", ""},
		{"RELAY_LISTEN_ADDR=:70000", ""},
		{"RELAY_LISTEN_ADDR=", ""},
		{"RELAY_ADMIN_ADDR=localhost", ""},
		{"RELAY_ADMIN_ADDR=:8080", `config: RELAY_ADMIN_ADDR: must differ from RELAY_LISTEN_ADDR, got ":8080"`},
		{"RELAY_WEBHOOK_PATH=webhooks", ""},
		{"RELAY_WEBHOOK_PATH=", ""},
		{"RELAY_WEBHOOK_PATH=/a b", ""},
		{"RELAY_WEBHOOK_PATH=/a?b=c", ""},
		{"RELAY_WEBHOOK_PATH=/{id}", ""},
		{"RELAY_WEBHOOK_PATH=/a//b", ""},
		{"RELAY_WEBHOOK_PATH=/a/../b", ""},
		{"RELAY_MAX_BODY_BYTES=0", `config: RELAY_MAX_BODY_BYTES: must be an integer of at least 1, got "0"`},
		{"RELAY_MAX_BODY_BYTES=-1", ""},
		{"RELAY_MAX_BODY_BYTES=16MB", ""},
		{"RELAY_MAX_BODY_BYTES=99999999999999999999", ""},
		{"RELAY_NATS_URL=http://nats:4222", `config: RELAY_NATS_URL: server 1: scheme must be nats, tls, ws or wss, got "http"`},
		{"RELAY_NATS_URL= , ", ""},
		{"RELAY_NATS_URL=nats://", ""},
		{"RELAY_NATS_URL=nats://a:4222,nats://b:4222:x", ""},
		{"RELAY_NATS_CREDS=" + filepath.Join(dir, "missing.creds"), ""},
		{"RELAY_NATS_CREDS=" + dir, ""},
		{"RELAY_DATA_DIR=", "config: RELAY_DATA_DIR: must not be empty"},
		{"RELAY_STREAM=", ""},
		{"RELAY_STREAM=UP VEST", ""},
		{"RELAY_STREAM=UP.VEST", ""},
		{"RELAY_STREAM=UP*", ""},
		{"RELAY_STREAM=UP>", ""},
		{"RELAY_STREAM=UP/VEST", ""},
		{`RELAY_STREAM=UP\VEST`, ""},
		{"RELAY_STREAM=" + strings.Repeat("S", 256), ""},
		{"RELAY_SUBJECT_PREFIX=", ""},
		{"RELAY_SUBJECT_PREFIX=upvest.>", ""},
		{"RELAY_SUBJECT_PREFIX=up.*.vest", ""},
		{"RELAY_SUBJECT_PREFIX=up..vest", ""},
		{"RELAY_SUBJECT_PREFIX=upvest.", ""},
		{"RELAY_SUBJECT_PREFIX=up vest", ""},
		{"RELAY_STREAM_REPLICAS=9", `config: RELAY_STREAM_REPLICAS: must be between 1 and 5, got "9"`},
		{"RELAY_STREAM_REPLICAS=0", ""},
		{"RELAY_STREAM_REPLICAS=three", ""},
		{"RELAY_STREAM_MAX_AGE=0s", `config: RELAY_STREAM_MAX_AGE: must be a positive duration such as 30s, 5m or 2h, got "0s"`},
		{"RELAY_STREAM_MAX_AGE=30", ""},
		{"RELAY_STREAM_MAX_AGE=1h", "config: RELAY_DUPLICATE_WINDOW: must not exceed the max age 1h0m0s, got 2h0m0s (RELAY_STREAM_MAX_AGE)"},
		{"RELAY_DUPLICATE_WINDOW=-2h", ""},
		{"RELAY_DUPLICATE_WINDOW=", ""},
		{"RELAY_UPVEST_BASE_URL=sandbox.upvest.co", ""},
		{"RELAY_UPVEST_BASE_URL=ftp://sandbox.upvest.co", ""},
		{"RELAY_UPVEST_BASE_URL=https://", ""},
		{"RELAY_UPVEST_BASE_URL=https://sandbox.upvest.co?x=1", ""},
		{"RELAY_UPVEST_BASE_URL=https://sandbox.upvest.co/#x", ""},
		{"RELAY_UPVEST_BASE_URL=", ""},
		{"RELAY_UPVEST_BASE_URL=https://a b", "config: RELAY_UPVEST_BASE_URL: not a valid URL"},
		{"RELAY_UPVEST_CLIENT_ID=a\x01b", ""},
		{"RELAY_UPVEST_SIGNING_KEY_ID=a\nb", ""},
		{"RELAY_UPVEST_SIGNING_KEY_FILE=" + filepath.Join(dir, "missing.pem"), ""},
		{"RELAY_VERIFY_KEYS_FILE=" + dir, ""},
		{"RELAY_SIGNATURE_MAX_AGE=soon", ""},
		{"RELAY_CLOCK_SKEW=0", ""},
		{"RELAY_WEBHOOK_URL=relay.example.com/hook", ""},
		{"RELAY_WEBHOOK_URL=mailto:ops@example.com", ""},
		{"RELAY_WEBHOOK_URL=https://relay.example.com/" + strings.Repeat("p", 1000), "config: RELAY_WEBHOOK_URL: must be at most 1000 bytes long, got 1026"},
		{"RELAY_WEBHOOK_TITLE=", ""},
		{"RELAY_WEBHOOK_TITLE=relay_with_underscore", ""},
		{"RELAY_WEBHOOK_TITLE=" + strings.Repeat("t", 33), ""},
		{"RELAY_WEBHOOK_TYPES=", `config: RELAY_WEBHOOK_TYPES: must be ALL or a comma list of event families, got ""`},
		{"RELAY_WEBHOOK_TYPES=order", `config: RELAY_WEBHOOK_TYPES: family "order" must be upper-case letters and '_', starting with a letter`},
		{"RELAY_WEBHOOK_TYPES=ORDER,,USER", ""},
		{"RELAY_WEBHOOK_TYPES=ALL,ORDER", `config: RELAY_WEBHOOK_TYPES: ALL must stand alone, got "ALL,ORDER"`},
		{"RELAY_WEBHOOK_TYPES=ORDER,ORDER", ""},
		{"RELAY_WEBHOOK_TYPES=_ORDER", ""},
		{"RELAY_WEBHOOK_TYPES=ORDER.FILLED", ""},
		{"RELAY_WEBHOOK_DELAY=0s", `config: RELAY_WEBHOOK_DELAY: must be 1s to 99s or 1m to 99m, such as 5s, got "0s"`},
		{"RELAY_WEBHOOK_DELAY=100s", ""},
		{"RELAY_WEBHOOK_DELAY=5h", ""},
		{"RELAY_WEBHOOK_DELAY=5", ""},
		{"RELAY_WEBHOOK_MAX_PACKAGE_SIZE=99", `config: RELAY_WEBHOOK_MAX_PACKAGE_SIZE: must be between 100 and 1048576, got "99"`},
		{"RELAY_WEBHOOK_MAX_PACKAGE_SIZE=1048577", ""},
		{"RELAY_RECONCILE_INTERVAL=-1m", ""},
		{"RELAY_LOG_LEVEL=verbose", `config: RELAY_LOG_LEVEL: must be one of trace, debug, info, warn, error, fatal, panic, disabled, got "verbose"`},
		{"RELAY_LOG_LEVEL=", ""},
		{"RELAY_LOG_LEVEL=1", ""},
		{"RELAY_LOG_FORMAT=text", `config: RELAY_LOG_FORMAT: must be json or console, got "text"`},
		{"RELAY_LOG_FORMAT=JSON", ""},
		// Newlines and long values stay on one short line.
		{"RELAY_STREAM=A\nB", `config: RELAY_STREAM: must be 1 to 255 printable ASCII characters without spaces, '.', '*', '>', '/' or '\', got "A\nB"`},
		{"RELAY_LOG_FORMAT=" + strings.Repeat("x", 1000), `config: RELAY_LOG_FORMAT: must be json or console, got "` + strings.Repeat("x", 64) + `"...`},
	}
	for _, tt := range tests {
		name, _, _ := strings.Cut(tt.env, "=")
		t.Run(shorten(tt.env), func(t *testing.T) {
			t.Parallel()
			_, err := load(t, tt.env)
			wantVar := name
			if tt.wantMsg != "" {
				wantVar = strings.SplitN(tt.wantMsg, ": ", 3)[1]
			}
			checkError(t, err, config.ErrInvalid, wantVar)
			if tt.wantMsg != "" && err.Error() != tt.wantMsg {
				t.Errorf("Load error = %q, want %q", err, tt.wantMsg)
			}
		})
	}
}

func shorten(s string) string {
	if len(s) > 60 {
		return s[:60]
	}
	return s
}

func TestLoadFileErrorsWrapCause(t *testing.T) {
	t.Parallel()
	_, err := load(t, "RELAY_VERIFY_KEYS_FILE=/nonexistent/jwks.json")
	checkError(t, err, config.ErrInvalid, "RELAY_VERIFY_KEYS_FILE")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Load error = %v, want one wrapping fs.ErrNotExist", err)
	}
}

func TestLoadWebhookURLRequiresCredentials(t *testing.T) {
	t.Parallel()
	key := writeFile(t, "key.pem")
	all := []string{
		"RELAY_UPVEST_CLIENT_ID=client",
		"RELAY_UPVEST_CLIENT_SECRET=secret",
		"RELAY_UPVEST_SIGNING_KEY_FILE=" + key,
		"RELAY_UPVEST_SIGNING_KEY_ID=kid",
	}
	names := []string{
		"RELAY_UPVEST_CLIENT_ID",
		"RELAY_UPVEST_CLIENT_SECRET",
		"RELAY_UPVEST_SIGNING_KEY_FILE",
		"RELAY_UPVEST_SIGNING_KEY_ID",
	}
	for i, missing := range names {
		t.Run(missing, func(t *testing.T) {
			t.Parallel()
			// Leave out the i-th and every later one: the error names the
			// first missing.
			environ := append([]string{"RELAY_WEBHOOK_URL=https://relay.example.com/hook"}, all[:i]...)
			_, err := load(t, environ...)
			checkError(t, err, config.ErrInvalid, missing)
			if want := "config: " + missing + ": required when RELAY_WEBHOOK_URL is set"; err.Error() != want {
				t.Errorf("Load error = %q, want %q", err, want)
			}
		})
	}
	t.Run("all set", func(t *testing.T) {
		t.Parallel()
		environ := append([]string{"RELAY_WEBHOOK_URL=http://localhost:8080/hook"}, all...)
		if _, err := load(t, environ...); err != nil {
			t.Errorf("Load error = %v, want nil", err)
		}
	})
	t.Run("not needed without webhook URL", func(t *testing.T) {
		t.Parallel()
		if _, err := load(t, "RELAY_WEBHOOK_URL="); err != nil {
			t.Errorf("Load error = %v, want nil", err)
		}
	})
}

func TestLoadListenAndAdminOnPortZero(t *testing.T) {
	t.Parallel()
	if _, err := load(t, "RELAY_LISTEN_ADDR=127.0.0.1:0", "RELAY_ADMIN_ADDR=127.0.0.1:0"); err != nil {
		t.Errorf("Load error = %v, want nil", err)
	}
}

func TestUsage(t *testing.T) {
	t.Parallel()
	usage := config.Usage()
	for _, want := range []string{
		"RELAY_LISTEN_ADDR", ":8080", "RELAY_WEBHOOK_PATH", "/webhooks/upvest", "RELAY_ADMIN_ADDR", ":9090",
		"RELAY_NATS_URL", "RELAY_NATS_CREDS", "RELAY_DATA_DIR", "./data", "RELAY_STREAM ", "UPVEST",
		"RELAY_SUBJECT_PREFIX", "upvest", "RELAY_STREAM_REPLICAS", "RELAY_STREAM_MAX_AGE", "720h",
		"RELAY_DUPLICATE_WINDOW", "2h", "RELAY_UPVEST_BASE_URL", "https://sandbox.upvest.co",
		"RELAY_UPVEST_CLIENT_ID", "RELAY_UPVEST_CLIENT_SECRET", "RELAY_UPVEST_SIGNING_KEY_FILE",
		"RELAY_UPVEST_SIGNING_KEY_ID", "RELAY_VERIFY_KEYS_FILE", "RELAY_SIGNATURE_MAX_AGE", "5m",
		"RELAY_CLOCK_SKEW", "30s", "RELAY_MAX_BODY_BYTES", "16777216", "RELAY_WEBHOOK_URL",
		"RELAY_WEBHOOK_TITLE", "upvest-relay", "RELAY_WEBHOOK_TYPES", "ALL", "RELAY_WEBHOOK_DELAY", "5s",
		"RELAY_WEBHOOK_MAX_PACKAGE_SIZE", "1048576", "RELAY_RECONCILE_INTERVAL", "1m",
		"RELAY_LOG_LEVEL", "info", "RELAY_LOG_FORMAT", "json",
	} {
		if !strings.Contains(usage, want) {
			t.Errorf("Usage() lacks %q:\n%s", want, usage)
		}
	}
	// 36 variables, a heading and a column header; nothing wraps.
	if got, want := strings.Count(usage, "\n  RELAY_"), 36; got != want {
		t.Errorf("Usage() lists %d variables, want %d:\n%s", got, want, usage)
	}
}
