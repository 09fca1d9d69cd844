package config

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/upvest-relay/upvest-relay/broker"

	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/subjects"
)

// setString sets *p to s if check accepts it.
func setString[T ~string](p *T, s string, check func(string) error) error {
	if err := check(s); err != nil {
		return err
	}
	*p = T(s)
	return nil
}

// hostPort is a listen address: RELAY_LISTEN_ADDR, RELAY_ADMIN_ADDR.
type hostPort string

func (v *hostPort) Decode(s string) error { return setString(v, s, checkHostPort) }
func (v *hostPort) String() string        { return string(*v) }

// urlPath is RELAY_WEBHOOK_PATH.
type urlPath string

func (v *urlPath) Decode(s string) error { return setString(v, s, checkPath) }
func (v *urlPath) String() string        { return string(*v) }

// filePath is empty or a readable file: RELAY_NATS_CREDS and the *_FILE
// variables.
type filePath string

func (v *filePath) Decode(s string) error { return setString(v, s, checkFile) }
func (v *filePath) String() string        { return string(*v) }

// nonEmpty is RELAY_DATA_DIR.
type nonEmpty string

func (v *nonEmpty) Decode(s string) error { return setString(v, s, checkNonEmpty) }
func (v *nonEmpty) String() string        { return string(*v) }

// streamName is RELAY_STREAM.
type streamName string

func (v *streamName) Decode(s string) error { return setString(v, s, checkStreamName) }
func (v *streamName) String() string        { return string(*v) }

// subjectPrefix is RELAY_SUBJECT_PREFIX.
type subjectPrefix string

func (v *subjectPrefix) Decode(s string) error { return setString(v, s, checkPrefix) }
func (v *subjectPrefix) String() string        { return string(*v) }

// printable is RELAY_UPVEST_CLIENT_ID, RELAY_UPVEST_SIGNING_KEY_ID.
type printable string

func (v *printable) Decode(s string) error { return setString(v, s, checkPrintable) }
func (v *printable) String() string        { return string(*v) }

// title is RELAY_WEBHOOK_TITLE.
type title string

func (v *title) Decode(s string) error { return setString(v, s, checkTitle) }
func (v *title) String() string        { return string(*v) }

// delay is RELAY_WEBHOOK_DELAY, in Upvest's form.
type delay string

func (v *delay) Decode(s string) error { return setString(v, s, checkDelay) }
func (v *delay) String() string        { return string(*v) }

// logFormat is RELAY_LOG_FORMAT.
type logFormat string

func (v *logFormat) Decode(s string) error { return setString(v, s, checkLogFormat) }
func (v *logFormat) String() string        { return string(*v) }

// parseInt parses a decimal integer from min to max; max 0 means no upper
// bound. (envconfig's own integers also take 0x, 0o and '_' forms.)
func parseInt(s string, min, max int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	switch {
	case max == 0 && (err != nil || n < min):
		return 0, fmt.Errorf("must be an integer of at least %d, got %s", min, quote(s))
	case max != 0 && (err != nil || n < min || n > max):
		return 0, fmt.Errorf("must be between %d and %d, got %s", min, max, quote(s))
	}
	return n, nil
}

// replicas is RELAY_STREAM_REPLICAS.
type replicas int

func (v *replicas) Decode(s string) error {
	n, err := parseInt(s, broker.MinReplicas, broker.MaxReplicas)
	if err != nil {
		return err
	}
	*v = replicas(n)
	return nil
}

func (v *replicas) String() string { return strconv.Itoa(int(*v)) }

// bodyBytes is RELAY_MAX_BODY_BYTES.
type bodyBytes int64

func (v *bodyBytes) Decode(s string) error {
	n, err := parseInt(s, 1, 0)
	if err != nil {
		return err
	}
	*v = bodyBytes(n)
	return nil
}

func (v *bodyBytes) String() string { return strconv.FormatInt(int64(*v), 10) }

// packageSize is RELAY_WEBHOOK_MAX_PACKAGE_SIZE.
type packageSize int

func (v *packageSize) Decode(s string) error {
	n, err := parseInt(s, 100, 1048576)
	if err != nil {
		return err
	}
	*v = packageSize(n)
	return nil
}

func (v *packageSize) String() string { return strconv.Itoa(int(*v)) }

// duration is a positive time.Duration.
type duration time.Duration

func (v *duration) Decode(s string) error {
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("must be a positive duration such as 30s, 5m or 2h, got %s", quote(s))
	}
	*v = duration(d)
	return nil
}

func (v *duration) String() string { return time.Duration(*v).String() }

// syncInterval is RELAY_EMBEDDED_SYNC: "always" (0, fsync every write) or
// a positive duration, JetStream's sync interval.
type syncInterval time.Duration

// syncAlways is the word for fsync on every write.
const syncAlways = "always"

func (v *syncInterval) Decode(s string) error {
	if s == syncAlways {
		*v = 0
		return nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return fmt.Errorf("must be always or a positive duration such as 10s or 2m, got %s", quote(s))
	}
	*v = syncInterval(d)
	return nil
}

func (v *syncInterval) String() string {
	if *v == 0 {
		return syncAlways
	}
	return time.Duration(*v).String()
}

// prefixes is RELAY_ALLOWED_SOURCES, RELAY_TRUSTED_PROXIES: empty, or a
// comma list of CIDR prefixes and bare addresses (a /32 or /128). A prefix
// with host bits set (10.0.0.1/8) is refused as a likely mistake; addresses
// carry no zone.
type prefixes []netip.Prefix

func (v *prefixes) Decode(s string) error {
	if strings.TrimSpace(s) == "" {
		*v = nil
		return nil
	}
	var list []netip.Prefix
	for entry := range strings.SplitSeq(s, ",") {
		entry = strings.TrimSpace(entry)
		p, err := parsePrefix(entry)
		if err != nil {
			return err
		}
		if slices.Contains(list, p) {
			return fmt.Errorf("%s listed twice", quote(entry))
		}
		list = append(list, p)
	}
	*v = list
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if s == "" {
		return netip.Prefix{}, errors.New("must be a comma list of CIDRs or IP addresses, with no empty entry")
	}
	if !strings.Contains(s, "/") {
		a, err := netip.ParseAddr(s)
		if err != nil || a.Zone() != "" {
			return netip.Prefix{}, fmt.Errorf("must be a CIDR such as 10.0.0.0/8 or an IP address, got %s", quote(s))
		}
		return netip.PrefixFrom(a, a.BitLen()), nil
	}
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("must be a CIDR such as 10.0.0.0/8 or an IP address, got %s", quote(s))
	}
	if m := p.Masked(); m != p {
		return netip.Prefix{}, fmt.Errorf("%s has host bits set; the network is %s", quote(s), m)
	}
	return p, nil
}

func (v *prefixes) String() string {
	s := make([]string, len(*v))
	for i, p := range *v {
		s[i] = p.String()
	}
	return strings.Join(s, ",")
}

// logLevel is RELAY_LOG_LEVEL, a zerolog level by name.
type logLevel zerolog.Level

func (v *logLevel) Decode(s string) error {
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
	*v = logLevel(l)
	return nil
}

func (v *logLevel) String() string { return zerolog.Level(*v).String() }

// webhookTypes is RELAY_WEBHOOK_TYPES: "ALL" alone, or upper-case families.
// Unknown families are allowed: Upvest adds new ones over time. (envconfig's
// own slices keep spaces and empty entries, and take "" as no entries.)
type webhookTypes []string

var familyRE = regexp.MustCompile(`^[A-Z][A-Z_]*$`)

func (v *webhookTypes) Decode(s string) error {
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
	*v = types
	return nil
}

func (v *webhookTypes) String() string { return strings.Join(*v, ",") }

// baseURL is RELAY_UPVEST_BASE_URL: an absolute http or https URL without a
// query; its trailing '/' is dropped so that paths can be appended.
type baseURL string

func (v *baseURL) Decode(s string) error {
	if err := checkURL(s, true); err != nil {
		return err
	}
	*v = baseURL(strings.TrimRight(s, "/"))
	return nil
}

func (v *baseURL) String() string { return showURL(string(*v)) }

// webhookURL is RELAY_WEBHOOK_URL: empty, or an absolute http or https URL.
type webhookURL string

func (v *webhookURL) Decode(s string) error {
	if s != "" {
		if err := checkURL(s, false); err != nil {
			return err
		}
	}
	*v = webhookURL(s)
	return nil
}

func (v *webhookURL) String() string { return showURL(string(*v)) }

// maxURLLen is Upvest's limit on a webhook URL.
const maxURLLen = 1000

// checkURL accepts an absolute http or https URL without a fragment, and
// for a base URL without a query.
func checkURL(s string, base bool) error {
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
	case base && (u.RawQuery != "" || u.ForceQuery):
		return fmt.Errorf("must not have a query, got %s", quote(redactUser(u)))
	case len(s) > maxURLLen:
		return fmt.Errorf("must be at most %d bytes long, got %d", maxURLLen, len(s))
	}
	return nil
}

// showURL returns s with its user information redacted.
func showURL(s string) string {
	u, err := url.Parse(s)
	if err != nil { // not after a successful Decode
		return redacted
	}
	return redactUser(u)
}

// natsURLs is RELAY_NATS_URL: empty, or a comma list of servers in the
// forms nats.go accepts (nats, tls, ws or wss URLs, or host:port).
type natsURLs string

func (v *natsURLs) Decode(s string) error {
	if s == "" {
		*v = ""
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
	*v = natsURLs(s)
	return nil
}

func (v *natsURLs) String() string {
	if *v == "" {
		return ""
	}
	entries := strings.Split(string(*v), ",")
	for i, e := range entries {
		e = strings.TrimSpace(e)
		scheme := ""
		if !strings.Contains(e, "://") {
			scheme = "nats://"
		}
		u, err := url.Parse(scheme + e)
		switch {
		case err != nil: // not after a successful Decode
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

func checkStreamName(s string) error {
	if err := broker.ValidStreamName(s); err != nil {
		return fmt.Errorf("%w, got %s", err, quote(s))
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
		return fmt.Errorf("cannot read %s: %w", quote(s), unwrapPath(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.IsDir() {
		return fmt.Errorf("%s is a directory, not a file", quote(s))
	}
	return nil
}

// unwrapPath returns the cause inside an *os.PathError, whose own message
// repeats the operation and the path.
func unwrapPath(err error) error {
	if pe, ok := errors.AsType[*os.PathError](err); ok {
		return pe.Err
	}
	return err
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
