package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kelseyhightower/envconfig"
	"github.com/rs/zerolog"
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
// field comes from; see Usage for defaults and meanings.
type Config struct {
	// Ingress.
	ListenAddr   string // RELAY_LISTEN_ADDR
	WebhookPath  string // RELAY_WEBHOOK_PATH
	AdminAddr    string // RELAY_ADMIN_ADDR
	MaxBodyBytes int64  // RELAY_MAX_BODY_BYTES

	// NATS and the stream.
	NATSURL         string        // RELAY_NATS_URL; empty: embedded server
	NATSCreds       string        // RELAY_NATS_CREDS
	DataDir         string        // RELAY_DATA_DIR
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

// Load builds a Config from the process environment with envconfig.
// Variables not set take their defaults; a variable set to the empty string
// is empty (envconfig's rule).
//
// The error, if any, is an *Error for the first offending variable: unknown
// RELAY_* names first (in sorted order), then the variables in Usage order,
// then rules that involve several variables.
func Load() (Config, error) {
	var c Config
	s := c.spec()
	if err := envconfig.CheckDisallowed(envPrefix, s); err != nil {
		return Config{}, unknownError(s, err)
	}
	if err := envconfig.Process(envPrefix, s); err != nil {
		// A ParseError's own message repeats the value, which may be the
		// secret or a URL with a password: keep only the decoder's error.
		if pe, ok := errors.AsType[*envconfig.ParseError](err); ok {
			return Config{}, invalid(pe.KeyName, pe.Err)
		}
		return Config{}, fmt.Errorf("config: %w", err) // not for this spec: no required tags
	}
	if err := c.check(); err != nil {
		return Config{}, err
	}
	return c, nil
}

// unknownError turns CheckDisallowed's error, which names the first unknown
// variable in environment order, into an *Error for the first in sorted
// order, so that the answer does not depend on the order of the environment.
func unknownError(s *spec, err error) error {
	known := s.names()
	var unknown []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, Prefix) && !slices.Contains(known, name) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) == 0 { // the environment changed in between
		return fmt.Errorf("config: %w", err)
	}
	return &Error{Var: slices.Min(unknown), Err: errors.New("unknown variable"), kind: ErrUnknown}
}

// check applies the rules that involve more than one variable.
func (c *Config) check() error {
	if c.WebhookURL != "" {
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
	}
	if c.DuplicateWindow > c.StreamMaxAge {
		return invalid("RELAY_DUPLICATE_WINDOW", fmt.Errorf("must not exceed RELAY_STREAM_MAX_AGE (%s), got %s", c.StreamMaxAge, c.DuplicateWindow))
	}
	if c.AdminAddr == c.ListenAddr {
		if _, port, _ := net.SplitHostPort(c.AdminAddr); port != "0" {
			return invalid("RELAY_ADMIN_ADDR", fmt.Errorf("must differ from RELAY_LISTEN_ADDR, got %s", quote(c.AdminAddr)))
		}
	}
	return nil
}

func invalid(name string, err error) *Error {
	return &Error{Var: name, Err: err, kind: ErrInvalid}
}

// MarshalZerologObject implements zerolog.LogObjectMarshaler: one string field
// per variable, named as the variable, with the client secret and the user
// information of URLs redacted.
func (c Config) MarshalZerologObject(e *zerolog.Event) {
	c.spec().visit(func(name string, v variable) {
		e.Str(name, v.String())
	})
}

// String returns the configuration as NAME="value" pairs in Usage order,
// redacted as in MarshalZerologObject.
func (c Config) String() string {
	var b strings.Builder
	c.spec().visit(func(name string, v variable) {
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
	c.spec().visit(func(name string, v variable) {
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

// usageFormat is the envconfig.Usagef template for Usage's table, whose
// columns a tabwriter aligns.
const usageFormat = "  VARIABLE\tDEFAULT\tMEANING\n" +
	"{{range .}}  {{usage_key .}}\t{{or (usage_default .) \"(empty)\"}}\t{{usage_description .}}\n{{end}}"

// Usage returns a table of every variable with its default and meaning, for
// --help output.
func Usage() string {
	var b strings.Builder
	b.WriteString("Environment (unknown " + Prefix + "* variables are an error):\n\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	var c Config
	if err := envconfig.Usagef(envPrefix, c.spec(), w, usageFormat); err != nil {
		panic("config: " + err.Error()) // a fixed template on a fixed spec
	}
	w.Flush()
	return b.String()
}
