package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

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

// Load builds a Config from environ, a list of "NAME=value" entries as
// returned by os.Environ. Variables not set take their defaults; a variable
// set to the empty string is empty. When a name appears twice, the first
// entry wins, as with os.Getenv. Entries without '=' and names not starting
// with RELAY_ are ignored. Load(nil) returns the defaults.
//
// The error, if any, is an *Error for the first offending variable: unknown
// names first (in sorted order), then the variables in Usage order, then
// rules that involve several variables.
func Load(environ []string) (Config, error) {
	env := make(map[string]string)
	for _, kv := range environ {
		name, value, ok := strings.Cut(kv, "=")
		if !ok || !strings.HasPrefix(name, Prefix) {
			continue
		}
		if _, seen := env[name]; !seen {
			env[name] = value
		}
	}

	var c Config
	vars := c.variables()
	var unknown []string
	for name := range env {
		if !slices.ContainsFunc(vars, func(v variable) bool { return v.name == name }) {
			unknown = append(unknown, name)
		}
	}
	if len(unknown) > 0 {
		slices.Sort(unknown)
		return Config{}, &Error{Var: unknown[0], Err: errors.New("unknown variable"), kind: ErrUnknown}
	}

	for _, v := range vars {
		value, ok := env[v.name]
		if !ok {
			value = v.def
		}
		if err := v.value.Set(value); err != nil {
			return Config{}, invalid(v.name, err)
		}
	}
	if err := c.check(); err != nil {
		return Config{}, err
	}
	return c, nil
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
	for _, v := range c.variables() {
		e.Str(v.name, v.value.String())
	}
}

// String returns the configuration as NAME="value" pairs in Usage order,
// redacted as in MarshalZerologObject.
func (c Config) String() string {
	var b strings.Builder
	for i, v := range c.variables() {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(v.name)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(v.value.String()))
	}
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
	for i, v := range c.variables() {
		if i > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendQuote(b, v.name)
		b = append(b, ':')
		value, err := json.Marshal(v.value.String())
		if err != nil {
			return nil, err
		}
		b = append(b, value...)
	}
	return append(b, '}'), nil
}

// Usage returns a table of every variable with its default and meaning, for
// --help output.
func Usage() string {
	var b strings.Builder
	b.WriteString("Environment (unknown " + Prefix + "* variables are an error):\n\n")
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w, "  VARIABLE\tDEFAULT\tMEANING")
	var c Config
	for _, v := range c.variables() {
		def := v.def
		if def == "" {
			def = "(empty)"
		}
		fmt.Fprintf(w, "  %s\t%s\t%s\n", v.name, def, v.help)
	}
	w.Flush()
	return b.String()
}
