package config

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/rs/zerolog"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Prefix starts the name of every configuration variable.
const Prefix = "RELAY_"

// Sentinel errors wrapped by every *Error that Load returns.
var (
	// ErrUnknown: a RELAY_* variable that the relay does not know.
	ErrUnknown = errors.New("config: unknown variable")
	// ErrInvalid: a variable with a bad value, or a required one missing.
	ErrInvalid = errors.New("config: invalid value")
)

// Error reports one offending variable. Its message is a single line,
// "config: <Var>: <Err>", and it wraps ErrUnknown or ErrInvalid as well as
// Err.
type Error struct {
	// Var is the offending variable, e.g. "RELAY_STREAM_REPLICAS".
	Var string
	// Err says what is wrong, without the variable name.
	Err error

	kind error
}

func (e *Error) Error() string {
	return "config: " + e.Var + ": " + e.Err.Error()
}

// Unwrap returns the sentinel (ErrUnknown or ErrInvalid) and Err.
func (e *Error) Unwrap() []error {
	return []error{e.kind, e.Err}
}

// Config is the relay's configuration. Field comments name the variable each
// field comes from; see Usage or Reference for defaults and meanings.
type Config struct {
	// Ingress.
	ListenAddr     string         // RELAY_LISTEN_ADDR
	WebhookPath    string         // RELAY_WEBHOOK_PATH
	AdminAddr      string         // RELAY_ADMIN_ADDR
	MaxBodyBytes   int64          // RELAY_MAX_BODY_BYTES
	TLSCertFile    string         // RELAY_TLS_CERT_FILE; empty: plain HTTP
	TLSKeyFile     string         // RELAY_TLS_KEY_FILE; set with TLSCertFile
	AllowedSources []netip.Prefix // RELAY_ALLOWED_SOURCES; empty: any source
	TrustedProxies []netip.Prefix // RELAY_TRUSTED_PROXIES; empty: none

	// NATS and the stream.
	NATSURL         string        // RELAY_NATS_URL; empty: embedded server
	NATSCreds       string        // RELAY_NATS_CREDS
	NATSTLSCAFile   string        // RELAY_NATS_TLS_CA_FILE
	NATSTLSCertFile string        // RELAY_NATS_TLS_CERT_FILE
	NATSTLSKeyFile  string        // RELAY_NATS_TLS_KEY_FILE; set with NATSTLSCertFile
	DataDir         string        // RELAY_DATA_DIR
	EmbeddedSync    time.Duration // RELAY_EMBEDDED_SYNC; 0 ("always"): fsync every write
	Stream          string        // RELAY_STREAM
	SubjectPrefix   string        // RELAY_SUBJECT_PREFIX
	StreamReplicas  int           // RELAY_STREAM_REPLICAS
	StreamMaxAge    time.Duration // RELAY_STREAM_MAX_AGE
	DuplicateWindow time.Duration // RELAY_DUPLICATE_WINDOW

	// Upvest client and signature verification.
	UpvestBaseURL        string        // RELAY_UPVEST_BASE_URL, without a trailing '/'
	UpvestClientID       string        // RELAY_UPVEST_CLIENT_ID
	UpvestClientSecret   Secret        // RELAY_UPVEST_CLIENT_SECRET
	UpvestSigningKeyFile string        // RELAY_UPVEST_SIGNING_KEY_FILE
	UpvestSigningKeyID   string        // RELAY_UPVEST_SIGNING_KEY_ID
	VerifyKeysFile       string        // RELAY_VERIFY_KEYS_FILE; empty: fetch from Upvest
	SignatureMaxAge      time.Duration // RELAY_SIGNATURE_MAX_AGE
	ClockSkew            time.Duration // RELAY_CLOCK_SKEW

	// Control loop; off when WebhookURL is empty.
	WebhookURL            string        // RELAY_WEBHOOK_URL
	WebhookTitle          string        // RELAY_WEBHOOK_TITLE
	WebhookTypes          []string      // RELAY_WEBHOOK_TYPES: ["ALL"] or upper-case families
	WebhookDelay          string        // RELAY_WEBHOOK_DELAY, Upvest's form: "5s", "2m"
	WebhookMaxPackageSize int           // RELAY_WEBHOOK_MAX_PACKAGE_SIZE
	ReconcileInterval     time.Duration // RELAY_RECONCILE_INTERVAL

	// Logging.
	LogLevel  zerolog.Level // RELAY_LOG_LEVEL
	LogFormat string        // RELAY_LOG_FORMAT: "json" or "console"
}

// Load builds a Config from the process environment: FromEnviron of
// os.Environ().
func Load() (Config, error) {
	return FromEnviron(os.Environ())
}

// FromEnviron builds a Config from environ, "NAME=value" entries as
// os.Environ returns them; entries without the RELAY_ prefix are ignored,
// and of a name given twice the first counts (as for os.Getenv).
// Variables not set take their defaults; a variable set to the empty string
// is empty (envconfig's rule), which for most is an error.
//
// The error, if any, is an *Error for the first offending variable: unknown
// RELAY_* names first (in sorted order, with the closest known name
// suggested), then the variables in Usage order, then the rules that
// involve several variables, in Reference order. It never repeats the
// client secret or the user information of a URL.
func FromEnviron(environ []string) (Config, error) {
	env := make(map[string]string)
	for _, kv := range environ {
		name, value, _ := strings.Cut(kv, "=")
		if _, dup := env[name]; !dup && strings.HasPrefix(name, Prefix) {
			env[name] = value
		}
	}
	if err := checkUnknown(env); err != nil {
		return Config{}, err
	}
	var c Config
	for _, v := range variables {
		value, ok := env[v.name]
		if !ok {
			value = v.def
		}
		if err := v.field(&c).Decode(value); err != nil {
			return Config{}, invalid(v.name, err)
		}
	}
	for _, r := range rules {
		if err := r.check(&c); err != nil {
			return Config{}, err
		}
	}
	return c, nil
}

// checkUnknown reports the first unknown name of env in sorted order, so
// that the answer does not depend on the order of the environment.
func checkUnknown(env map[string]string) error {
	var unknown []string
	for name := range env {
		if !slices.ContainsFunc(variables, func(v entry) bool { return v.name == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 {
		return nil
	}
	name := slices.Min(unknown)
	msg := "unknown variable"
	if near := closest(name); near != "" {
		msg += "; did you mean " + near + "?"
	}
	return &Error{Var: name, Err: errors.New(msg), kind: ErrUnknown}
}

func invalid(name string, err error) *Error {
	return &Error{Var: name, Err: err, kind: ErrInvalid}
}

// visit calls fn with the name and the value of every variable of c, in
// Usage order.
func (c *Config) visit(fn func(name string, v variable)) {
	for _, v := range variables {
		fn(v.name, v.field(c))
	}
}

// MarshalZerologObject implements zerolog.LogObjectMarshaler: one string field
// per variable, named as the variable, with the client secret and the user
// information of URLs redacted.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	c.visit(func(name string, v variable) {
		e.Str(name, v.String())
	})
}

// String returns the configuration as NAME="value" pairs in Usage order,
// redacted as in MarshalZerologObject.
func (c Config) String() string {
	var b strings.Builder
	c.visit(func(name string, v variable) {
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(v.String()))
	})
	return b.String()
}

// Format implements fmt.Formatter: every verb, %#v included, prints String,
// so no way of printing a Config shows a credential.
func (c Config) Format(f fmt.State, verb rune) {
	fmt.Fprint(f, c.String())
}

// MarshalJSON implements json.Marshaler with the same redacted view: an
// object of variable names to strings, in Usage order.
func (c Config) MarshalJSON() ([]byte, error) {
	b := []byte{'{'}
	var err error
	c.visit(func(name string, v variable) {
		if len(b) > 1 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, name)
		b = append(b, ':')
		value, e := json.Marshal(v.String())
		err = errors.Join(err, e)
		b = append(b, value...)
	})
	if err != nil {
		return nil, err
	}
	return append(b, '}'), nil
}

// Names returns the name of every variable, in Usage order.
func Names() []string {
	names := make([]string, len(variables))
	for i, v := range variables {
		names[i] = v.name
	}
	return names
}

// Usage returns a table of every variable with its default and meaning, for
// --help output.
func Usage() string {
	var b strings.Builder
	b.WriteString("Environment (unknown " + Prefix + "* variables are an error):\n\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  VARIABLE\tDEFAULT\tMEANING")
	for _, v := range variables {
		fmt.Fprintf(w, "  %s\t%s\t%s\n", v.name, cmp.Or(v.def, "(empty)"), v.desc)
	}
	w.Flush()
	b.WriteString("\nTracing: the standard OpenTelemetry OTEL_* variables; off unless\n" +
		"OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_TRACES_EXPORTER=otlp) is set.\n")
	return b.String()
}
