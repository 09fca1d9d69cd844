// Package check diagnoses a relay installation in one pass, for `relay
// check`: the configuration, NATS and JetStream, the stream, the Upvest
// credentials, the verification keys, the webhook subscription, and, when
// asked, a test delivery travelling from Upvest through a running relay into
// the stream.
//
// Every check gives one Result, in the fixed order of Names, whatever
// happens: a check whose prerequisite failed, or that does not apply to the
// configuration, is Skipped with the reason. A diagnosis passes when no
// check Failed. A check that was asked for but could not be made (NATS of an
// embedded server with no relay running, a test delivery with the control
// loop off) fails rather than being skipped, so that passing always
// means every applicable check passed. A check skipped because an earlier
// one failed adds nothing: the diagnosis has failed already.
package check

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"golang.org/x/oauth2"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/subjects"
	"github.com/upvest-relay/upvest-relay/upvest"
	"github.com/upvest-relay/upvest-relay/verify"
)

// Status is the outcome of one check.
type Status string

// The statuses.
const (
	OK      Status = "ok"
	Failed  Status = "failed"
	Skipped Status = "skipped"
)

// The checks, in the order they run and are reported.
const (
	Config       = "config"
	NATS         = "nats"
	Stream       = "stream"
	UpvestToken  = "upvest_token"
	VerifyKeys   = "verify_keys"
	Subscription = "subscription"
	TestDelivery = "test_delivery"
)

// Names lists every check in order.
func Names() []string {
	return []string{Config, NATS, Stream, UpvestToken, VerifyKeys, Subscription, TestDelivery}
}

// Result is the outcome of one check. Detail says what was found (OK) or
// why (Failed, Skipped); it is one line and never holds a secret.
type Result struct {
	Check  string `json:"check"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// String renders r as its text line, e.g. "nats          ok: nats://…".
func (r Result) String() string {
	s := fmt.Sprintf("%-14s %s", r.Check, r.Status)
	if r.Detail != "" {
		s += ": " + r.Detail
	}
	return s
}

// Defaults of the options.
const (
	DefaultStepTimeout     = 10 * time.Second
	DefaultDeliveryTimeout = 30 * time.Second
)

// ErrNoKeySource: the configuration gives the relay no way to get
// verification keys; `relay serve` refuses to start with it, and the
// config check fails with it.
var ErrNoKeySource = errors.New("RELAY_VERIFY_KEYS_FILE: required unless the Upvest client credentials (RELAY_UPVEST_CLIENT_ID, ...) are set to fetch the keys")

// ErrInvalid is wrapped by New for an invalid option.
var ErrInvalid = errors.New("check: invalid option")

// Option configures a Checker.
type Option func(*Checker)

// WithTestDelivery makes the diagnosis ask Upvest for a test delivery to
// the subscription and wait up to timeout (> 0) for it to arrive in the
// stream through a running relay. Without it the test_delivery check is
// skipped.
func WithTestDelivery(timeout time.Duration) Option {
	return func(c *Checker) { c.testDelivery, c.deliveryTimeout = true, timeout }
}

// WithStepTimeout bounds each network step (connect, one API call),
// default DefaultStepTimeout; it must be positive.
func WithStepTimeout(d time.Duration) Option {
	return func(c *Checker) { c.stepTimeout = d }
}

// Checker runs diagnoses. Create it with New.
type Checker struct {
	testDelivery    bool
	deliveryTimeout time.Duration
	stepTimeout     time.Duration
}

// New returns a Checker, or an error wrapping ErrInvalid.
func New(opts ...Option) (*Checker, error) {
	c := &Checker{stepTimeout: DefaultStepTimeout, deliveryTimeout: DefaultDeliveryTimeout}
	for _, o := range opts {
		o(c)
	}
	switch {
	case c.stepTimeout <= 0:
		return nil, fmt.Errorf("%w: step timeout %s is not positive", ErrInvalid, c.stepTimeout)
	case c.deliveryTimeout <= 0:
		return nil, fmt.Errorf("%w: delivery timeout %s is not positive", ErrInvalid, c.deliveryTimeout)
	}
	return c, nil
}

// Run loads the configuration from environ ("NAME=value" entries, as
// os.Environ returns them; see config.FromEnviron) and diagnoses it,
// handing each Result to emit as soon as it is known. It reports whether
// no check failed.
func (c *Checker) Run(ctx context.Context, environ []string, emit func(Result)) bool {
	cfg, err := config.FromEnviron(environ)
	if err != nil {
		emit(Result{Config, Failed, oneLine(err)})
		for _, n := range Names()[1:] {
			emit(Result{n, Skipped, "the configuration is invalid"})
		}
		return false
	}
	return c.RunConfig(ctx, cfg, emit)
}

// RunConfig diagnoses cfg, handing each Result to emit in the order of
// Names. It reports whether no check failed.
func (c *Checker) RunConfig(ctx context.Context, cfg config.Config, emit func(Result)) bool {
	d := &diagnosis{c: c, cfg: cfg, passed: true, emit: emit}
	defer d.close()
	d.config()
	d.nats(ctx)
	d.stream(ctx)
	d.token(ctx)
	d.keys()
	d.subscription(ctx)
	d.testDelivery(ctx)
	return d.passed
}

// diagnosis is one run: what each check found, for the checks after it.
type diagnosis struct {
	c      *Checker
	cfg    config.Config
	emit   func(Result)
	passed bool

	client    *upvest.Client
	clientErr error
	nc        *nats.Conn
	js        jetstream.JetStream
	streamOK  bool
	keysBody  []byte // the fetched JWKS, when the token check fetched it
	keysErr   error
	webhookID string
}

func (d *diagnosis) report(check string, s Status, format string, args ...any) {
	if s == Failed {
		d.passed = false
	}
	d.emit(Result{check, s, oneLine(fmt.Errorf(format, args...))})
}

func (d *diagnosis) close() {
	if d.nc != nil {
		d.nc.Close()
	}
}

func (d *diagnosis) config() {
	cfg := d.cfg
	if cfg.UpvestClientID != "" {
		d.client, d.clientErr = NewUpvestClient(cfg)
	}
	switch {
	case d.clientErr != nil:
		d.report(Config, Failed, "%v", d.clientErr)
	case cfg.VerifyKeysFile == "" && d.client == nil:
		d.report(Config, Failed, "%v", ErrNoKeySource)
	default:
		loop := "control loop off (RELAY_WEBHOOK_URL empty)"
		if cfg.WebhookURL != "" {
			loop = "control loop on for " + cfg.WebhookURL
		}
		keys := "verification keys fetched from " + cfg.UpvestBaseURL
		if cfg.VerifyKeysFile != "" {
			keys = "verification keys from RELAY_VERIFY_KEYS_FILE"
		}
		d.report(Config, OK, "%s; %s", loop, keys)
	}
}

// NewUpvestClient builds the Upvest API client from cfg's RELAY_UPVEST_*
// variables; `relay serve` builds its client with it too.
func NewUpvestClient(cfg config.Config, opts ...upvest.Option) (*upvest.Client, error) {
	key, err := upvest.LoadSigningKey(cfg.UpvestSigningKeyFile)
	if err != nil {
		return nil, fmt.Errorf("RELAY_UPVEST_SIGNING_KEY_FILE: %w", err)
	}
	c, err := upvest.New(cfg.UpvestBaseURL, cfg.UpvestClientID, cfg.UpvestClientSecret.Reveal(), key, cfg.UpvestSigningKeyID, opts...)
	if err != nil {
		return nil, fmt.Errorf("RELAY_UPVEST_*: %w", err)
	}
	return c, nil
}

// NATSOptions are the connection options cfg's RELAY_NATS_* variables
// give (credentials, TLS); `relay serve` and the other commands connect
// with them too.
func NATSOptions(cfg config.Config) []broker.ConnectOption {
	return []broker.ConnectOption{
		broker.WithCredentials(cfg.NATSCreds),
		broker.WithTLS(cfg.NATSTLSCAFile, cfg.NATSTLSCertFile, cfg.NATSTLSKeyFile),
	}
}

func (d *diagnosis) nats(ctx context.Context) {
	cfg := d.cfg
	u := cfg.NATSURL
	if u == "" {
		var err error
		if u, err = broker.EmbeddedURL(cfg.DataDir); err != nil {
			d.report(NATS, Failed, "RELAY_NATS_URL is empty (the relay starts an embedded server) and no relay is running on RELAY_DATA_DIR %s: start the relay, or set RELAY_NATS_URL", cfg.DataDir)
			return
		}
	}
	ctx, cancel := context.WithTimeout(ctx, d.c.stepTimeout)
	defer cancel()
	nc, err := broker.Connect(ctx, u, zerolog.Nop(), append(NATSOptions(cfg),
		broker.WithName("upvest-relay check"),
		broker.WithNATSOptions(nats.RetryOnFailedConnect(false), nats.Timeout(d.c.stepTimeout), nats.NoReconnect()))...)
	if err != nil {
		d.report(NATS, Failed, "%s: %v", redactURLs(u), err)
		return
	}
	d.nc = nc
	head := fmt.Sprintf("%s, server %s", nc.ConnectedUrlRedacted(), nc.ConnectedServerVersion())
	js, err := jetstream.New(nc)
	if err == nil {
		_, err = js.AccountInfo(ctx)
	}
	if err != nil {
		d.report(NATS, Failed, "%s: JetStream not available: %v", head, err)
		return
	}
	d.js = js
	if max := nc.MaxPayload(); max < cfg.MaxBodyBytes {
		d.report(NATS, Failed, "%s, JetStream on, but max_payload %d is below RELAY_MAX_BODY_BYTES %d: a single event larger than max_payload cannot be stored (raise max_payload or lower RELAY_MAX_BODY_BYTES)", head, max, cfg.MaxBodyBytes)
		return
	}
	d.report(NATS, OK, "%s, JetStream on, max_payload %d >= RELAY_MAX_BODY_BYTES %d", head, nc.MaxPayload(), cfg.MaxBodyBytes)
}

func (d *diagnosis) stream(ctx context.Context) {
	if d.js == nil {
		d.report(Stream, Skipped, "needs NATS")
		return
	}
	cfg := d.cfg
	ctx, cancel := context.WithTimeout(ctx, d.c.stepTimeout)
	defer cancel()
	s, err := d.js.Stream(ctx, cfg.Stream)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		d.report(Stream, Failed, "stream %s not found (relay serve creates it at start)", cfg.Stream)
		return
	}
	if err != nil {
		d.report(Stream, Failed, "stream %s: %v", cfg.Stream, err)
		return
	}
	info := s.CachedInfo()
	got := info.Config
	var drift []string
	if want := []string{subjects.Stream(cfg.SubjectPrefix)}; !slices.Equal(got.Subjects, want) {
		drift = append(drift, fmt.Sprintf("subjects %v (want %v)", got.Subjects, want))
	}
	if got.Replicas != cfg.StreamReplicas {
		drift = append(drift, fmt.Sprintf("replicas %d (want RELAY_STREAM_REPLICAS %d)", got.Replicas, cfg.StreamReplicas))
	}
	if got.MaxAge != cfg.StreamMaxAge {
		drift = append(drift, fmt.Sprintf("max age %s (want RELAY_STREAM_MAX_AGE %s)", got.MaxAge, cfg.StreamMaxAge))
	}
	if got.Duplicates != cfg.DuplicateWindow {
		drift = append(drift, fmt.Sprintf("duplicate window %s (want RELAY_DUPLICATE_WINDOW %s)", got.Duplicates, cfg.DuplicateWindow))
	}
	if len(drift) > 0 {
		d.report(Stream, Failed, "stream %s differs from the configuration: %s (relay serve updates it at start)", cfg.Stream, strings.Join(drift, ", "))
		return
	}
	d.streamOK = true
	batches := "on"
	if !got.AllowBatchPublish {
		batches = "off (packages are stored one message at a time; needs nats-server 2.14 or later, and relay serve turns it on at start)"
	}
	d.report(Stream, OK, "%s: subjects %s, %d replicas, max age %s, duplicate window %s, %d messages, batch publishing %s",
		cfg.Stream, strings.Join(got.Subjects, ","), got.Replicas, got.MaxAge, got.Duplicates, info.State.Msgs, batches)
}

// token obtains a token by fetching the verification keys, the one call
// every configuration with credentials may make.
func (d *diagnosis) token(ctx context.Context) {
	if d.client == nil {
		d.report(UpvestToken, Skipped, "no Upvest client credentials (RELAY_UPVEST_CLIENT_ID empty)")
		d.keysErr = errors.New("no Upvest client credentials")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.c.stepTimeout)
	defer cancel()
	body, err := fetchKeys(ctx, d.client)
	var re *oauth2.RetrieveError
	switch {
	case errors.As(err, &re):
		d.report(UpvestToken, Failed, "%s/auth/token: %s", d.cfg.UpvestBaseURL, describeRetrieve(re))
		d.keysErr = errors.New("no token")
		return
	case errors.Is(err, errStatus):
		d.keysErr = err // a token was issued: the keys call itself failed
	case err != nil:
		d.report(UpvestToken, Failed, "%s: %v", d.cfg.UpvestBaseURL, err)
		d.keysErr = errors.New("no token")
		return
	}
	d.keysBody = body
	d.report(UpvestToken, OK, "token issued by %s/auth/token to client %s", d.cfg.UpvestBaseURL, d.cfg.UpvestClientID)
}

var errStatus = errors.New("unexpected status")

// FetchKeys fetches Upvest's verification JWKS (GET /auth/verify_keys) with
// client and checks it is a usable RELAY_VERIFY_KEYS_FILE; it returns the
// document as Upvest sent it.
func FetchKeys(ctx context.Context, client *upvest.Client) ([]byte, error) {
	body, err := fetchKeys(ctx, client)
	if err != nil {
		return nil, err
	}
	if _, err := verify.ParseKeys(body); err != nil {
		return nil, fmt.Errorf("check: %s: %w", client.VerifyKeysURL(), err)
	}
	return body, nil
}

func fetchKeys(ctx context.Context, client *upvest.Client) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, client.VerifyKeysURL(), nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := client.HTTPClient().Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // the URL is said by the caller
		}
		return nil, fmt.Errorf("check: GET /auth/verify_keys: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("check: GET /auth/verify_keys: %w", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("check: GET /auth/verify_keys: %w %d%s", errStatus, resp.StatusCode, problemDetail(body))
	}
	return body, nil
}

// describeRetrieve renders a refused token call: status and problem
// detail, never the body as such.
func describeRetrieve(re *oauth2.RetrieveError) string {
	if re.Response == nil {
		return "token refused"
	}
	return fmt.Sprintf("status %d%s", re.Response.StatusCode, problemDetail(re.Body))
}

func problemDetail(body []byte) string {
	var p struct{ Title, Detail string }
	if json.Unmarshal(body, &p) != nil || (p.Title == "" && p.Detail == "") {
		return ""
	}
	return ": " + strings.Trim(p.Title+": "+p.Detail, ": ")
}

func (d *diagnosis) keys() {
	var body []byte
	source := "RELAY_VERIFY_KEYS_FILE " + d.cfg.VerifyKeysFile
	if d.cfg.VerifyKeysFile != "" {
		if _, err := verify.LoadKeysFile(d.cfg.VerifyKeysFile); err != nil {
			d.report(VerifyKeys, Failed, "%v", err)
			return
		}
		body, _ = os.ReadFile(d.cfg.VerifyKeysFile)
	} else {
		if d.client == nil {
			d.report(VerifyKeys, Skipped, "neither RELAY_VERIFY_KEYS_FILE nor Upvest credentials are set")
			return
		}
		if d.keysBody == nil {
			if errors.Is(d.keysErr, errStatus) {
				d.report(VerifyKeys, Failed, "%v", d.keysErr)
			} else {
				d.report(VerifyKeys, Skipped, "needs an Upvest token")
			}
			return
		}
		body, source = d.keysBody, d.client.VerifyKeysURL()
		if _, err := verify.ParseKeys(body); err != nil {
			d.report(VerifyKeys, Failed, "%s: %v", source, err)
			return
		}
	}
	kids := Kids(body)
	d.report(VerifyKeys, OK, "%d keys from %s: kid %s", len(kids), source, strings.Join(kids, ", "))
}

// Kids lists the key ids of a JWK set document, in document order.
func Kids(jwks []byte) []string {
	var doc struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	_ = json.Unmarshal(jwks, &doc)
	var kids []string
	for _, k := range doc.Keys {
		kids = append(kids, k.Kid)
	}
	return kids
}

func (d *diagnosis) subscription(ctx context.Context) {
	cfg := d.cfg
	switch {
	case cfg.WebhookURL == "":
		d.report(Subscription, Skipped, "RELAY_WEBHOOK_URL is empty (control loop off)")
		return
	case d.client == nil:
		d.report(Subscription, Skipped, "no Upvest client")
		return
	}
	ctx, cancel := context.WithTimeout(ctx, d.c.stepTimeout)
	defer cancel()
	hooks, err := d.client.ListWebhooks(ctx)
	if err != nil {
		d.report(Subscription, Failed, "%v", err)
		return
	}
	var mine []upvest.Webhook
	for _, h := range hooks {
		if h.URL == cfg.WebhookURL {
			mine = append(mine, h)
		}
	}
	if len(mine) == 0 {
		d.report(Subscription, Failed, "no subscription for %s among %d (a running relay creates it within RELAY_RECONCILE_INTERVAL)", cfg.WebhookURL, len(hooks))
		return
	}
	// The oldest is the one the control loop maintains.
	slices.SortStableFunc(mine, func(a, b upvest.Webhook) int { return a.CreatedAt.Compare(b.CreatedAt) })
	h := mine[0]
	d.webhookID = h.ID
	var problems []string
	if !h.Enabled {
		problems = append(problems, "disabled (a running relay re-enables it)")
	}
	if h.Title != cfg.WebhookTitle {
		problems = append(problems, fmt.Sprintf("title %q (want RELAY_WEBHOOK_TITLE %q)", h.Title, cfg.WebhookTitle))
	}
	if !sameSet(h.Type, cfg.WebhookTypes) {
		problems = append(problems, fmt.Sprintf("type %s (want RELAY_WEBHOOK_TYPES %s)", strings.Join(h.Type, ","), strings.Join(cfg.WebhookTypes, ",")))
	}
	if h.Config.Delay != cfg.WebhookDelay {
		problems = append(problems, fmt.Sprintf("delay %q (want RELAY_WEBHOOK_DELAY %q)", h.Config.Delay, cfg.WebhookDelay))
	}
	if h.Config.MaxPackageSize != cfg.WebhookMaxPackageSize {
		problems = append(problems, fmt.Sprintf("max_package_size %d (want RELAY_WEBHOOK_MAX_PACKAGE_SIZE %d)", h.Config.MaxPackageSize, cfg.WebhookMaxPackageSize))
	}
	extra := ""
	if len(mine) > 1 {
		extra = fmt.Sprintf(" (%d subscriptions for this URL; the oldest is maintained)", len(mine))
	}
	if len(problems) > 0 {
		d.report(Subscription, Failed, "%s%s: %s", h.ID, extra, strings.Join(problems, "; "))
		return
	}
	d.report(Subscription, OK, "%s%s: enabled, type %s, delay %s, max_package_size %d", h.ID, extra, strings.Join(h.Type, ","), h.Config.Delay, h.Config.MaxPackageSize)
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// testDelivery asks Upvest for a test package and watches the stream, from
// the message after its last one, for a message whose data carries the
// subscription's webhook_id. The test event's type is not relied on.
func (d *diagnosis) testDelivery(ctx context.Context) {
	switch {
	case !d.c.testDelivery:
		d.report(TestDelivery, Skipped, "not asked for (--test-delivery)")
		return
	case d.cfg.WebhookURL == "":
		d.report(TestDelivery, Failed, "asked for, but RELAY_WEBHOOK_URL is empty: there is no subscription to test")
		return
	case d.webhookID == "":
		d.report(TestDelivery, Skipped, "needs the subscription")
		return
	case !d.streamOK:
		d.report(TestDelivery, Skipped, "needs the stream")
		return
	}
	sctx, cancel := context.WithTimeout(ctx, d.c.stepTimeout)
	defer cancel()
	s, err := d.js.Stream(sctx, d.cfg.Stream)
	if err != nil {
		d.report(TestDelivery, Failed, "stream %s: %v", d.cfg.Stream, err)
		return
	}
	cc := jetstream.OrderedConsumerConfig{
		FilterSubjects:    []string{subjects.Stream(d.cfg.SubjectPrefix)},
		DeliverPolicy:     jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:       s.CachedInfo().State.LastSeq + 1,
		InactiveThreshold: 10 * time.Second,
	}
	cons, err := s.OrderedConsumer(sctx, cc)
	if err != nil {
		d.report(TestDelivery, Failed, "consumer on %s: %v", d.cfg.Stream, err)
		return
	}
	start := time.Now()
	if err := d.client.TestWebhook(sctx, d.webhookID); err != nil {
		d.report(TestDelivery, Failed, "ask for a test delivery: %v", err)
		return
	}
	wctx, wcancel := context.WithTimeout(ctx, d.c.deliveryTimeout)
	defer wcancel()
	for {
		left := time.Until(start.Add(d.c.deliveryTimeout))
		if left <= 0 || wctx.Err() != nil {
			d.report(TestDelivery, Failed, "asked Upvest for a test delivery to %s; nothing with webhook_id %s reached stream %s within %s (is a relay running and reachable at RELAY_WEBHOOK_URL?)",
				d.webhookID, d.webhookID, d.cfg.Stream, d.c.deliveryTimeout)
			return
		}
		batch, err := cons.Fetch(64, jetstream.FetchMaxWait(min(left, time.Second)))
		if err != nil {
			if wctx.Err() == nil {
				time.Sleep(min(left, 100*time.Millisecond))
			}
			continue
		}
		for m := range batch.Messages() {
			if webhookID(m.Data()) == d.webhookID {
				md, _ := m.Metadata()
				seq := uint64(0)
				if md != nil {
					seq = md.Sequence.Stream
				}
				d.report(TestDelivery, OK, "arrived after %s on %s (stream sequence %d)", time.Since(start).Round(time.Millisecond), m.Subject(), seq)
				return
			}
		}
	}
}

func webhookID(data []byte) string {
	var ev struct {
		WebhookID string `json:"webhook_id"`
	}
	if len(data) == 0 || data[0] != '{' || json.Unmarshal(data, &ev) != nil {
		return ""
	}
	return ev.WebhookID
}

// redactURLs hides the passwords of a comma-separated URL list.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil {
			if u.User != nil {
				u.User = url.User("redacted")
			}
			parts[i] = u.String()
		} else {
			parts[i] = "(unparsable URL)"
		}
	}
	return strings.Join(parts, ",")
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
