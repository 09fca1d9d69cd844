package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/subjects"
)

// variable is one row of the configuration table.
type variable struct {
	name  string // full name, RELAY_...
	def   string // default, in the form the variable takes
	help  string // meaning, for Usage
	value value  // parses, validates and stores into a Config field
}

// value is a Config field as a variable sees it, like flag.Value: Set parses
// and validates text (its error names no variable), String shows the current
// value for logs with secrets and URL passwords redacted.
type value interface {
	Set(string) error
	String() string
}

// variables returns the configuration table with every value bound to a
// field of c. The order is CONTRACT.md's and is Usage's.
func (c *Config) variables() []variable {
	return []variable{
		{"RELAY_LISTEN_ADDR", ":8080", "webhook ingress listener (host:port)",
			&stringVar{p: &c.ListenAddr, check: checkHostPort}},
		{"RELAY_WEBHOOK_PATH", "/webhooks/upvest", "path Upvest POSTs to",
			&stringVar{p: &c.WebhookPath, check: checkPath}},
		{"RELAY_ADMIN_ADDR", ":9090", "/healthz, /readyz, /metrics (Prometheus) listener (host:port)",
			&stringVar{p: &c.AdminAddr, check: checkHostPort}},
		{"RELAY_NATS_URL", "", "NATS servers, comma-separated; empty = start an embedded JetStream server",
			&natsURLVar{p: &c.NATSURL}},
		{"RELAY_NATS_CREDS", "", "NATS credentials file",
			&stringVar{p: &c.NATSCreds, check: checkFile}},
		{"RELAY_DATA_DIR", "./data", "embedded server's JetStream store",
			&stringVar{p: &c.DataDir, check: checkNonEmpty}},
		{"RELAY_STREAM", "UPVEST", "stream name (created or updated at start to match config)",
			&stringVar{p: &c.Stream, check: checkStreamName}},
		{"RELAY_SUBJECT_PREFIX", "upvest", "first subject token(s)",
			&stringVar{p: &c.SubjectPrefix, check: checkPrefix}},
		{"RELAY_STREAM_REPLICAS", "1", "stream replicas, 1-5 (3 on a cluster)",
			&intVar[int]{p: &c.StreamReplicas, min: 1, max: 5}},
		{"RELAY_STREAM_MAX_AGE", "720h", "retention for replay",
			&durationVar{p: &c.StreamMaxAge}},
		{"RELAY_DUPLICATE_WINDOW", "2h", "JetStream dedup window on Nats-Msg-Id (at most RELAY_STREAM_MAX_AGE)",
			&durationVar{p: &c.DuplicateWindow}},
		{"RELAY_UPVEST_BASE_URL", "https://sandbox.upvest.co", "Upvest API",
			&urlVar{p: &c.UpvestBaseURL, base: true}},
		{"RELAY_UPVEST_CLIENT_ID", "", "OAuth client id (required with RELAY_WEBHOOK_URL)",
			&stringVar{p: &c.UpvestClientID, check: checkPrintable}},
		{"RELAY_UPVEST_CLIENT_SECRET", "", "OAuth client secret (required with RELAY_WEBHOOK_URL)",
			&secretVar{p: &c.UpvestClientSecret}},
		{"RELAY_UPVEST_SIGNING_KEY_FILE", "", "tenant private key, PEM, P-521 or Ed25519, for signing API calls (required with RELAY_WEBHOOK_URL)",
			&stringVar{p: &c.UpvestSigningKeyFile, check: checkFile}},
		{"RELAY_UPVEST_SIGNING_KEY_ID", "", "key id of the tenant private key (required with RELAY_WEBHOOK_URL)",
			&stringVar{p: &c.UpvestSigningKeyID, check: checkPrintable}},
		{"RELAY_VERIFY_KEYS_FILE", "", "static JWKS file instead of fetching /auth/verify_keys",
			&stringVar{p: &c.VerifyKeysFile, check: checkFile}},
		{"RELAY_SIGNATURE_MAX_AGE", "5m", "reject signatures whose created is older than this",
			&durationVar{p: &c.SignatureMaxAge}},
		{"RELAY_CLOCK_SKEW", "30s", "tolerance for created in the future and expires in the past",
			&durationVar{p: &c.ClockSkew}},
		{"RELAY_MAX_BODY_BYTES", "16777216", "larger bodies get 413",
			&intVar[int64]{p: &c.MaxBodyBytes, min: 1}},
		{"RELAY_WEBHOOK_URL", "", "public URL to keep registered upstream; empty = control loop off",
			&urlVar{p: &c.WebhookURL, optional: true}},
		{"RELAY_WEBHOOK_TITLE", "upvest-relay", "subscription title (1-32 of a-z A-Z 0-9 space ()[]{}.-)",
			&stringVar{p: &c.WebhookTitle, check: checkTitle}},
		{"RELAY_WEBHOOK_TYPES", "ALL", "comma list of event families, or ALL",
			&typesVar{p: &c.WebhookTypes}},
		{"RELAY_WEBHOOK_DELAY", "5s", "subscription batching: longest collection time (1s-99s or 1m-99m)",
			&stringVar{p: &c.WebhookDelay, check: checkDelay}},
		{"RELAY_WEBHOOK_MAX_PACKAGE_SIZE", "1048576", "subscription batching: package size in bytes (100-1048576)",
			&intVar[int]{p: &c.WebhookMaxPackageSize, min: 100, max: 1048576}},
		{"RELAY_RECONCILE_INTERVAL", "1m", "control-loop period",
			&durationVar{p: &c.ReconcileInterval}},
		{"RELAY_LOG_LEVEL", "info", "zerolog level: trace, debug, info, warn, error, fatal, panic or disabled",
			&levelVar{p: &c.LogLevel}},
		{"RELAY_LOG_FORMAT", "json", "json or console",
			&stringVar{p: &c.LogFormat, check: checkLogFormat}},
	}
}

type stringVar struct {
	p     *string
	check func(string) error
}

func (v *stringVar) Set(s string) error {
	if err := v.check(s); err != nil {
		return err
	}
	*v.p = s
	return nil
}

func (v *stringVar) String() string { return *v.p }

type secretVar struct{ p *Secret }

func (v *secretVar) Set(s string) error {
	*v.p = NewSecret(s)
	return nil
}

func (v *secretVar) String() string { return v.p.String() }

// intVar is an integer from min to max; max 0 means no upper bound.
type intVar[T int | int64] struct {
	p        *T
	min, max T
}

func (v *intVar[T]) Set(s string) error {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case v.max == 0 && (err != nil || n < int64(v.min)):
		return fmt.Errorf("must be an integer of at least %d, got %s", v.min, quote(s))
	case v.max != 0 && (err != nil || n < int64(v.min) || n > int64(v.max)):
		return fmt.Errorf("must be between %d and %d, got %s", v.min, v.max, quote(s))
	}
	*v.p = T(n)
	return nil
}

func (v *intVar[T]) String() string { return strconv.FormatInt(int64(*v.p), 10) }

type durationVar struct{ p *time.Duration }

func (v *durationVar) Set(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("must be a positive duration such as 30s, 5m or 2h, got %s", quote(s))
	}
	*v.p = d
	return nil
}

func (v *durationVar) String() string { return v.p.String() }

type levelVar struct{ p *zerolog.Level }

func (v *levelVar) Set(s string) error {
	// zerolog.ParseLevel also takes "" and numbers; only names are allowed.
	switch strings.ToLower(s) {
	case "trace", "debug", "info", "warn", "error", "fatal", "panic", "disabled":
	default:
		return fmt.Errorf("must be one of trace, debug, info, warn, error, fatal, panic, disabled, got %s", quote(s))
	}
	l, err := zerolog.ParseLevel(s)
	if err != nil {
		return fmt.Errorf("must be one of trace, debug, info, warn, error, fatal, panic, disabled, got %s", quote(s))
	}
	*v.p = l
	return nil
}

func (v *levelVar) String() string { return v.p.String() }

// typesVar is RELAY_WEBHOOK_TYPES: "ALL" alone, or upper-case families.
// Unknown families are allowed: Upvest adds new ones over time.
type typesVar struct{ p *[]string }

var familyRE = regexp.MustCompile(`^[A-Z][A-Z_]*$`)

func (v *typesVar) Set(s string) error {
	var types []string
	for t := range strings.SplitSeq(s, ",") {
		t = strings.TrimSpace(t)
		switch {
		case t == "":
			return fmt.Errorf("must be ALL or a comma list of event families, got %s", quote(s))
		case !familyRE.MatchString(t):
			return fmt.Errorf("family %s must be upper-case letters and '_', starting with a letter", quote(t))
		case slices.Contains(types, t):
			return fmt.Errorf("family %s listed twice", quote(t))
		}
		types = append(types, t)
	}
	if len(types) > 1 && slices.Contains(types, "ALL") {
		return fmt.Errorf("ALL must stand alone, got %s", quote(s))
	}
	*v.p = types
	return nil
}

func (v *typesVar) String() string { return strings.Join(*v.p, ",") }

// urlVar is an absolute http or https URL. A base URL has no query, and its
// trailing '/' is dropped so that paths can be appended.
type urlVar struct {
	p        *string
	base     bool // RELAY_UPVEST_BASE_URL
	optional bool // may be empty
}

// maxURLLen is Upvest's limit on a webhook URL.
const maxURLLen = 1000

func (v *urlVar) Set(s string) error {
	if s == "" && v.optional {
		*v.p = ""
		return nil
	}
	u, err := parseURL(s)
	if err != nil {
		return err
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("must be an absolute http or https URL, got %s", quote(redactUser(u)))
	case u.Host == "":
		return fmt.Errorf("must have a host, got %s", quote(redactUser(u)))
	case strings.Contains(s, "#"):
		return fmt.Errorf("must not have a fragment, got %s", quote(redactUser(u)))
	case v.base && (u.RawQuery != "" || u.ForceQuery):
		return fmt.Errorf("must not have a query, got %s", quote(redactUser(u)))
	case len(s) > maxURLLen:
		return fmt.Errorf("must be at most %d bytes long, got %d", maxURLLen, len(s))
	}
	if v.base {
		s = strings.TrimRight(s, "/")
	}
	*v.p = s
	return nil
}

func (v *urlVar) String() string {
	u, err := url.Parse(*v.p)
	if err != nil { // not after a successful Set
		return redacted
	}
	return redactUser(u)
}

// natsURLVar is RELAY_NATS_URL: empty, or a comma list of servers in the
// forms nats.go accepts (nats, tls, ws or wss URLs, or host:port).
type natsURLVar struct{ p *string }

func (v *natsURLVar) Set(s string) error {
	if s == "" {
		*v.p = ""
		return nil
	}
	n := 0
	for i, entry := range strings.Split(s, ",") {
		entry = strings.TrimSpace(entry)
		if entry == "" {
			continue
		}
		n++
		if !strings.Contains(entry, "://") {
			entry = "nats://" + entry
		}
		u, err := parseURL(entry)
		if err != nil {
			return fmt.Errorf("server %d: %w", i+1, err)
		}
		switch u.Scheme {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("server %d: scheme must be nats, tls, ws or wss, got %s", i+1, quote(u.Scheme))
		}
		if u.Hostname() == "" {
			return fmt.Errorf("server %d: must have a host, got %s", i+1, quote(redactUser(u)))
		}
	}
	if n == 0 {
		return fmt.Errorf("must list at least one server or be empty, got %s", quote(s))
	}
	*v.p = s
	return nil
}

func (v *natsURLVar) String() string {
	if *v.p == "" {
		return ""
	}
	entries := strings.Split(*v.p, ",")
	for i, e := range entries {
		e = strings.TrimSpace(e)
		scheme := ""
		if !strings.Contains(e, "://") {
			scheme = "nats://"
		}
		u, err := url.Parse(scheme + e)
		switch {
		case err != nil: // not after a successful Set
			entries[i] = redacted
		case u.User == nil:
			entries[i] = e
		default:
			entries[i] = strings.TrimPrefix(redactUser(u), scheme)
		}
	}
	return strings.Join(entries, ",")
}

// parseURL parses s. Its error says no more than that: url.Parse's errors
// can repeat parts of the URL, which may hold a password or token.
func parseURL(s string) (*url.URL, error) {
	u, err := url.Parse(s)
	if err != nil {
		return nil, errors.New("not a valid URL")
	}
	return u, nil
}

// redactUser returns u as a string with its whole user information, which
// may be a password or, for NATS, a bare token, replaced by "xxxxx".
func redactUser(u *url.URL) string {
	if u.User == nil {
		return u.String()
	}
	c := *u
	c.User = url.User("xxxxx")
	return c.String()
}

func checkHostPort(s string) error {
	_, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("must be host:port, such as :8080 or 127.0.0.1:8080, got %s", quote(s))
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil {
		return fmt.Errorf("port must be a number from 0 to 65535, got %s", quote(s))
	}
	return nil
}

// pathRE is an absolute path of RFC 3986 unreserved and sub-delim
// characters, ':', '@' and '/'; no '%', '?', '#', braces or whitespace.
var pathRE = regexp.MustCompile(`^/[A-Za-z0-9\-._~!$&'()*+,;=:@/]*$`)

func checkPath(s string) error {
	if !pathRE.MatchString(s) {
		return fmt.Errorf("must be a path starting with '/' without '%%', '?', '#', braces or spaces, got %s", quote(s))
	}
	if clean := path.Clean(s); s != clean && s != clean+"/" {
		return fmt.Errorf("must be a clean path (no '//', '.' or '..' segments), got %s", quote(s))
	}
	return nil
}

// maxStreamName is nats-server's JSMaxNameLen.
const maxStreamName = 255

func checkStreamName(s string) error {
	ok := s != "" && len(s) <= maxStreamName
	for i := 0; ok && i < len(s); i++ {
		c := s[i]
		ok = '!' <= c && c <= '~' && !strings.ContainsRune(`.*>/\`, rune(c))
	}
	if !ok {
		return fmt.Errorf(`must be 1 to %d printable ASCII characters without spaces, '.', '*', '>', '/' or '\', got %s`, maxStreamName, quote(s))
	}
	return nil
}

func checkPrefix(s string) error {
	if !subjects.ValidPrefix(s) {
		return fmt.Errorf("must be one or more '.'-separated subject tokens of printable ASCII without spaces, '*' or '>', got %s", quote(s))
	}
	return nil
}

func checkFile(s string) error {
	if s == "" {
		return nil
	}
	f, err := os.Open(s)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("cannot read %s: %w", quote(s), err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", quote(s))
	}
	return nil
}

func checkNonEmpty(s string) error {
	if s == "" {
		return errors.New("must not be empty")
	}
	return nil
}

// checkPrintable accepts printable ASCII, which is what may go into an HTTP
// header or a signature parameter.
func checkPrintable(s string) error {
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return fmt.Errorf("must be printable ASCII, got %s", quote(s))
		}
	}
	return nil
}

var titleRE = regexp.MustCompile(`^[a-zA-Z0-9 ()\[\]{}.-]{1,32}$`)

func checkTitle(s string) error {
	if !titleRE.MatchString(s) {
		return fmt.Errorf("must be 1 to 32 of a-z, A-Z, 0-9, space and ()[]{}.-, got %s", quote(s))
	}
	return nil
}

var delayRE = regexp.MustCompile(`^[1-9][0-9]?[sm]$`)

func checkDelay(s string) error {
	if !delayRE.MatchString(s) {
		return fmt.Errorf("must be 1s to 99s or 1m to 99m, such as 5s, got %s", quote(s))
	}
	return nil
}

func checkLogFormat(s string) error {
	if s != "json" && s != "console" {
		return fmt.Errorf("must be json or console, got %s", quote(s))
	}
	return nil
}

// maxQuoted bounds how much of a bad value an error repeats.
const maxQuoted = 64

// quote returns s as a Go string literal, cut after maxQuoted bytes, so that
// an error stays on one short line whatever s holds.
func quote(s string) string {
	if len(s) > maxQuoted {
		return strconv.Quote(s[:maxQuoted]) + "..."
	}
	return strconv.Quote(s)
}
