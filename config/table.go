package config

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/upvest-relay/upvest-relay/broker"

	"github.com/kelseyhightower/envconfig"
)

// variable is the type of the Config field behind each variable: Decode
// (envconfig.Decoder) parses and validates text, its error naming no
// variable; String shows the value for logs, with secrets and URL user
// information redacted.
type variable interface {
	envconfig.Decoder
	fmt.Stringer
}

// entry declares one variable: its name, the text it takes when unset, its
// meaning (one line, for Usage and the reference) and the Config field it
// sets, typed so that decoding validates and showing redacts.
type entry struct {
	name  string
	def   string
	desc  string
	field func(*Config) variable
}

// variables is the one declaration of every variable, in the order of
// Usage, the log view and the reference. Load decodes them in this order,
// so the first bad one here is the one reported.
var variables = []entry{
	// Ingress.
	{"RELAY_LISTEN_ADDR", ":8080", "webhook ingress listener (host:port)",
		func(c *Config) variable { return (*hostPort)(&c.ListenAddr) }},
	{"RELAY_WEBHOOK_PATH", "/webhooks/upvest", "path Upvest POSTs to",
		func(c *Config) variable { return (*urlPath)(&c.WebhookPath) }},
	{"RELAY_ADMIN_ADDR", ":9090", "/healthz, /readyz, /metrics (Prometheus) listener (host:port)",
		func(c *Config) variable { return (*hostPort)(&c.AdminAddr) }},
	{"RELAY_TLS_CERT_FILE", "", "ingress TLS certificate chain, PEM; empty = plain HTTP (with RELAY_TLS_KEY_FILE)",
		func(c *Config) variable { return (*filePath)(&c.TLSCertFile) }},
	{"RELAY_TLS_KEY_FILE", "", "ingress TLS private key, PEM (with RELAY_TLS_CERT_FILE)",
		func(c *Config) variable { return (*filePath)(&c.TLSKeyFile) }},
	{"RELAY_ALLOWED_SOURCES", "", "comma list of CIDRs or IPs allowed to POST; others get 403; empty = any",
		func(c *Config) variable { return (*prefixes)(&c.AllowedSources) }},
	{"RELAY_TRUSTED_PROXIES", "", "comma list of CIDRs or IPs whose X-Forwarded-For is believed; empty = none",
		func(c *Config) variable { return (*prefixes)(&c.TrustedProxies) }},

	// NATS and the stream.
	{"RELAY_NATS_URL", "", "NATS servers, comma-separated; empty = start an embedded JetStream server",
		func(c *Config) variable { return (*natsURLs)(&c.NATSURL) }},
	{"RELAY_NATS_CREDS", "", "NATS credentials file",
		func(c *Config) variable { return (*filePath)(&c.NATSCreds) }},
	{"RELAY_NATS_TLS_CA_FILE", "", "CA certificates, PEM, to verify the NATS servers; empty = system roots",
		func(c *Config) variable { return (*filePath)(&c.NATSTLSCAFile) }},
	{"RELAY_NATS_TLS_CERT_FILE", "", "client certificate, PEM, for NATS (with RELAY_NATS_TLS_KEY_FILE)",
		func(c *Config) variable { return (*filePath)(&c.NATSTLSCertFile) }},
	{"RELAY_NATS_TLS_KEY_FILE", "", "client private key, PEM, for NATS (with RELAY_NATS_TLS_CERT_FILE)",
		func(c *Config) variable { return (*filePath)(&c.NATSTLSKeyFile) }},
	{"RELAY_DATA_DIR", "./data", "embedded server's JetStream store",
		func(c *Config) variable { return (*nonEmpty)(&c.DataDir) }},
	{"RELAY_EMBEDDED_SYNC", "always", "embedded server's fsync: always (every write) or an interval such as 2m",
		func(c *Config) variable { return (*syncInterval)(&c.EmbeddedSync) }},
	{"RELAY_STREAM", "UPVEST", "stream name (created or updated at start to match config)",
		func(c *Config) variable { return (*streamName)(&c.Stream) }},
	{"RELAY_SUBJECT_PREFIX", "upvest", "first subject token(s)",
		func(c *Config) variable { return (*subjectPrefix)(&c.SubjectPrefix) }},
	{"RELAY_STREAM_REPLICAS", "1", "stream replicas, 1-5 (3 on a cluster)",
		func(c *Config) variable { return (*replicas)(&c.StreamReplicas) }},
	{"RELAY_STREAM_MAX_AGE", "720h", "retention for replay",
		func(c *Config) variable { return (*duration)(&c.StreamMaxAge) }},
	{"RELAY_DUPLICATE_WINDOW", "2h", "JetStream dedup window on Nats-Msg-Id (at most RELAY_STREAM_MAX_AGE)",
		func(c *Config) variable { return (*duration)(&c.DuplicateWindow) }},

	// Upvest client and signature verification.
	{"RELAY_UPVEST_BASE_URL", "https://sandbox.upvest.co", "Upvest API",
		func(c *Config) variable { return (*baseURL)(&c.UpvestBaseURL) }},
	{"RELAY_UPVEST_CLIENT_ID", "", "OAuth client id (required with RELAY_WEBHOOK_URL)",
		func(c *Config) variable { return (*printable)(&c.UpvestClientID) }},
	{"RELAY_UPVEST_CLIENT_SECRET", "", "OAuth client secret (required with RELAY_WEBHOOK_URL); never shown",
		func(c *Config) variable { return &c.UpvestClientSecret }},
	{"RELAY_UPVEST_SIGNING_KEY_FILE", "", "tenant private key, PEM, P-521 or Ed25519, for signing API calls (required with RELAY_WEBHOOK_URL)",
		func(c *Config) variable { return (*filePath)(&c.UpvestSigningKeyFile) }},
	{"RELAY_UPVEST_SIGNING_KEY_ID", "", "key id of the tenant private key (required with RELAY_WEBHOOK_URL)",
		func(c *Config) variable { return (*printable)(&c.UpvestSigningKeyID) }},
	{"RELAY_VERIFY_KEYS_FILE", "", "static JWKS file instead of fetching /auth/verify_keys",
		func(c *Config) variable { return (*filePath)(&c.VerifyKeysFile) }},
	{"RELAY_SIGNATURE_MAX_AGE", "5m", "reject signatures whose created is older than this",
		func(c *Config) variable { return (*duration)(&c.SignatureMaxAge) }},
	{"RELAY_CLOCK_SKEW", "30s", "tolerance for created in the future and expires in the past",
		func(c *Config) variable { return (*duration)(&c.ClockSkew) }},
	{"RELAY_MAX_BODY_BYTES", "16777216", "larger bodies get 413",
		func(c *Config) variable { return (*bodyBytes)(&c.MaxBodyBytes) }},

	// Control loop.
	{"RELAY_WEBHOOK_URL", "", "public URL to keep registered upstream; empty = control loop off",
		func(c *Config) variable { return (*webhookURL)(&c.WebhookURL) }},
	{"RELAY_WEBHOOK_TITLE", "upvest-relay", "subscription title (1-32 of a-z A-Z 0-9 space ()[]{}.-)",
		func(c *Config) variable { return (*title)(&c.WebhookTitle) }},
	{"RELAY_WEBHOOK_TYPES", "ALL", "comma list of event families, or ALL",
		func(c *Config) variable { return (*webhookTypes)(&c.WebhookTypes) }},
	{"RELAY_WEBHOOK_DELAY", "5s", "subscription batching: longest collection time (1s-99s or 1m-99m)",
		func(c *Config) variable { return (*delay)(&c.WebhookDelay) }},
	{"RELAY_WEBHOOK_MAX_PACKAGE_SIZE", "1048576", "subscription batching: package size in bytes (100-1048576)",
		func(c *Config) variable { return (*packageSize)(&c.WebhookMaxPackageSize) }},
	{"RELAY_RECONCILE_INTERVAL", "1m", "control-loop period",
		func(c *Config) variable { return (*duration)(&c.ReconcileInterval) }},

	// Logging.
	{"RELAY_LOG_LEVEL", "info", "zerolog level: trace, debug, info, warn, error, fatal, panic or disabled",
		func(c *Config) variable { return (*logLevel)(&c.LogLevel) }},
	{"RELAY_LOG_FORMAT", "json", "json or console",
		func(c *Config) variable { return (*logFormat)(&c.LogFormat) }},
}

// rule is a check that involves more than one variable. The error it
// returns is an *Error naming the variable to change.
type rule struct {
	desc  string // one sentence, for the reference
	check func(*Config) error
}

// rules are checked in order after every variable has decoded.
var rules = []rule{
	{"With RELAY_WEBHOOK_URL set, RELAY_UPVEST_CLIENT_ID, RELAY_UPVEST_CLIENT_SECRET, " +
		"RELAY_UPVEST_SIGNING_KEY_FILE and RELAY_UPVEST_SIGNING_KEY_ID are required.", checkCredentials},
	{"RELAY_DUPLICATE_WINDOW must not exceed RELAY_STREAM_MAX_AGE.", func(c *Config) error {
		if err := broker.ValidDuplicateWindow(c.DuplicateWindow, c.StreamMaxAge); err != nil {
			return invalid("RELAY_DUPLICATE_WINDOW", fmt.Errorf("%w (RELAY_STREAM_MAX_AGE)", err))
		}
		return nil
	}},
	{"RELAY_ADMIN_ADDR must differ from RELAY_LISTEN_ADDR, unless both take port 0.", func(c *Config) error {
		if c.AdminAddr == c.ListenAddr {
			if _, port, _ := net.SplitHostPort(c.AdminAddr); port != "0" {
				return invalid("RELAY_ADMIN_ADDR", fmt.Errorf("must differ from RELAY_LISTEN_ADDR, got %s", quote(c.AdminAddr)))
			}
		}
		return nil
	}},
	{"RELAY_TLS_CERT_FILE and RELAY_TLS_KEY_FILE are set together, and must hold a matching certificate and key.",
		func(c *Config) error {
			return checkKeyPair("RELAY_TLS_CERT_FILE", c.TLSCertFile, "RELAY_TLS_KEY_FILE", c.TLSKeyFile)
		}},
	{"RELAY_NATS_TLS_CA_FILE must hold at least one PEM certificate.", func(c *Config) error {
		return checkCAFile("RELAY_NATS_TLS_CA_FILE", c.NATSTLSCAFile)
	}},
	{"RELAY_NATS_TLS_CERT_FILE and RELAY_NATS_TLS_KEY_FILE are set together, and must hold a matching certificate and key.",
		func(c *Config) error {
			return checkKeyPair("RELAY_NATS_TLS_CERT_FILE", c.NATSTLSCertFile, "RELAY_NATS_TLS_KEY_FILE", c.NATSTLSKeyFile)
		}},
}

func checkCredentials(c *Config) error {
	if c.WebhookURL == "" {
		return nil
	}
	required := []struct {
		name string
		set  bool
	}{
		{"RELAY_UPVEST_CLIENT_ID", c.UpvestClientID != ""},
		{"RELAY_UPVEST_CLIENT_SECRET", !c.UpvestClientSecret.IsZero()},
		{"RELAY_UPVEST_SIGNING_KEY_FILE", c.UpvestSigningKeyFile != ""},
		{"RELAY_UPVEST_SIGNING_KEY_ID", c.UpvestSigningKeyID != ""},
	}
	for _, r := range required {
		if !r.set {
			return invalid(r.name, errors.New("required when RELAY_WEBHOOK_URL is set"))
		}
	}
	return nil
}

// checkKeyPair checks that a certificate and key file are both set or both
// empty, and that they load as a pair. The error names the certificate's
// variable, or the one missing.
func checkKeyPair(certVar, cert, keyVar, key string) error {
	switch {
	case cert == "" && key == "":
		return nil
	case key == "":
		return invalid(keyVar, fmt.Errorf("required when %s is set", certVar))
	case cert == "":
		return invalid(certVar, fmt.Errorf("required when %s is set", keyVar))
	}
	// tls's errors name neither the files nor their contents.
	if _, err := tls.LoadX509KeyPair(cert, key); err != nil {
		return invalid(certVar, fmt.Errorf("does not load as a pair with %s: %w", keyVar, err))
	}
	return nil
}

// checkCAFile checks that a CA file, when set, holds a PEM certificate.
func checkCAFile(name, file string) error {
	if file == "" {
		return nil
	}
	pem, err := os.ReadFile(file)
	if err != nil {
		return invalid(name, fmt.Errorf("cannot read %s: %w", quote(file), unwrapPath(err)))
	}
	if !x509.NewCertPool().AppendCertsFromPEM(pem) {
		return invalid(name, fmt.Errorf("%s holds no PEM certificate", quote(file)))
	}
	return nil
}
