package relay

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"

	"github.com/upvest-relay/upvest-relay/subjects"
)

// Verifier checks a request's signature over its raw body. Any error
// rejects the request with 401, except one wrapping
// verify.ErrKeysUnavailable, which is transient and answered with 503.
type Verifier interface {
	Verify(ctx context.Context, r *http.Request, body []byte) error
}

// Publisher is what the handler stores messages with: a JetStream
// context, ideally from broker.NewJetStream. It is the whole
// jetstream.JetStream because fast-ingest batches
// (github.com/synadia-io/orbit.go/jetstreamext) are built on it.
type Publisher interface {
	jetstream.JetStream
}

// RequestIDHeader carries the request id on every answer.
const RequestIDHeader = "X-Request-Id"

// Defaults of the handler's options.
const (
	DefaultPrefix      = "upvest"
	DefaultSourceBase  = "https://sandbox.upvest.co"
	DefaultMaxBody     = 16 << 20
	DefaultAckTimeout  = 5 * time.Second
	DefaultMaxInFlight = 32
)

// Option tunes NewHandler.
type Option func(*Handler)

// WithPrefix sets the subject prefix (default "upvest"); it must satisfy
// subjects.ValidPrefix.
func WithPrefix(prefix string) Option { return func(h *Handler) { h.prefix = prefix } }

// WithSourceBase sets the Upvest base URL that CloudEvent sources start
// with (default https://sandbox.upvest.co): <base>/webhooks/<webhook_id>.
func WithSourceBase(base string) Option { return func(h *Handler) { h.sourceBase = base } }

// WithMaxBodyBytes sets the largest body accepted (default 16 MiB);
// larger ones get 413.
func WithMaxBodyBytes(n int64) Option { return func(h *Handler) { h.maxBody = n } }

// WithAckTimeout bounds the wait for a package's PubAcks (default 5s);
// past it the package gets 503.
func WithAckTimeout(d time.Duration) Option { return func(h *Handler) { h.ackTimeout = d } }

// WithMaxInFlight bounds the verified packages being published at once
// (default 32); past it a verified package gets 503 at once. Requests
// being read or verified do not count (see HeadVerifier).
func WithMaxInFlight(n int) Option { return func(h *Handler) { h.maxInFlight = n } }

// WithReadiness gates the ingress on ready: while it returns an error,
// every request from an allowed source is answered 503 (reason
// not_ready, the error's text as the detail) before its body is read,
// e.g. while the stream does not exist yet. It is called once per request and must be cheap.
func WithReadiness(ready func() error) Option { return func(h *Handler) { h.ready = ready } }

// WithLogger sets the logger (default: none). Every line of a request
// carries its req_id.
func WithLogger(l zerolog.Logger) Option { return func(h *Handler) { h.log = l } }

// WithRegisterer registers the handler's metrics on reg (default: not
// registered).
func WithRegisterer(reg prometheus.Registerer) Option { return func(h *Handler) { h.reg = reg } }

// Handler is the webhook ingress, an http.Handler. See the package
// documentation for its answers.
type Handler struct {
	path        string
	verifier    Verifier
	pub         Publisher
	prefix      string
	sourceBase  string
	maxBody     int64
	ackTimeout  time.Duration
	maxInFlight int
	log         zerolog.Logger
	reg         prometheus.Registerer
	ready       func() error
	tracer      *tracer // nil: tracing off

	allowed     []netip.Prefix
	trusted     []netip.Prefix
	readBudget  int64
	bodyTimeout time.Duration
	maxVerify   int
	batchInit   bool

	batched atomic.Bool // fast-ingest batches; false once the server refused them
	types   *typeCache
	slots   chan struct{}
	group   *grouper
	admit   *admission
	metrics *metrics
	chain   http.Handler
}

// NewHandler returns the handler for POST path, verifying with v and
// publishing with p (a jetstream.JetStream, ideally from
// broker.NewJetStream).
func NewHandler(path string, v Verifier, p Publisher, opts ...Option) (*Handler, error) {
	h := &Handler{
		path:        path,
		verifier:    v,
		pub:         p,
		prefix:      DefaultPrefix,
		sourceBase:  DefaultSourceBase,
		maxBody:     DefaultMaxBody,
		ackTimeout:  DefaultAckTimeout,
		maxInFlight: DefaultMaxInFlight,
		readBudget:  DefaultReadBudget,
		bodyTimeout: DefaultBodyTimeout,
		batchInit:   true,
		log:         zerolog.Nop(),
	}
	for _, o := range opts {
		o(h)
	}
	h.sourceBase = strings.TrimRight(h.sourceBase, "/")
	switch u, err := url.Parse(h.sourceBase); {
	case !strings.HasPrefix(path, "/"):
		return nil, fmt.Errorf("relay: webhook path %q must start with /", path)
	case v == nil || p == nil:
		return nil, errors.New("relay: handler needs a verifier and a publisher")
	case !subjects.ValidPrefix(h.prefix):
		return nil, fmt.Errorf("relay: invalid subject prefix %q", h.prefix)
	case err != nil || !u.IsAbs() || u.Host == "":
		return nil, fmt.Errorf("relay: source base %q is not an absolute URL", h.sourceBase)
	case h.maxBody <= 0:
		return nil, fmt.Errorf("relay: max body bytes %d must be positive", h.maxBody)
	case h.ackTimeout <= 0:
		return nil, fmt.Errorf("relay: ack timeout %s must be positive", h.ackTimeout)
	case h.maxInFlight <= 0:
		return nil, fmt.Errorf("relay: max in flight %d must be positive", h.maxInFlight)
	case h.readBudget < readChunk:
		return nil, fmt.Errorf("relay: read budget %d must be at least %d", h.readBudget, readChunk)
	case h.bodyTimeout <= 0:
		return nil, fmt.Errorf("relay: body timeout %s must be positive", h.bodyTimeout)
	case h.maxVerify < 0:
		return nil, fmt.Errorf("relay: max verifications %d must not be negative", h.maxVerify)
	}
	m, err := newMetrics(h.reg)
	if err != nil {
		return nil, err
	}
	h.metrics = m
	h.batched.Store(h.batchInit)
	h.types = newTypeCache(h.prefix)
	h.slots = make(chan struct{}, h.maxInFlight)
	h.group = newGrouper(h, groupSlots)
	h.admit = newAdmission(h.readBudget, h.maxVerify)
	h.chain = hlog.NewHandler(h.log)(
		hlog.RequestIDHandler("req_id", RequestIDHeader)(
			http.HandlerFunc(h.serve)))
	return h, nil
}

// ServeHTTP implements http.Handler.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.chain.ServeHTTP(w, r)
}

// outcome is what a stored package amounted to.
type outcome struct {
	Events       int `json:"events"`
	Published    int `json:"published"`
	Duplicates   int `json:"duplicates"`
	DeadLettered int `json:"deadlettered"`
	notPackage   string
}

// serve answers one request: handle does the work, answer maps its error.
func (h *Handler) serve(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	r, tr := h.startTrace(r)
	out, err := h.handle(w, r, tr)
	log := hlog.FromRequest(r)
	if err != nil {
		p := answer(err)
		h.metrics.packages.WithLabelValues(p.result).Inc()
		h.metrics.rejections.WithLabelValues(p.reason).Inc()
		h.metrics.packageDuration.Observe(time.Since(start).Seconds())
		p.write(w)
		tr.end(p.status, p.reason, outcome{})
		log.Warn().Err(err).Int("status", p.status).Str("reason", p.reason).
			Str("method", r.Method).Str("path", r.URL.Path).Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
			Msg("webhook request rejected")
		return
	}
	result := resultOK
	if out.notPackage != "" {
		result = resultDeadLetter
	}
	h.metrics.packages.WithLabelValues(result).Inc()
	h.metrics.packageDuration.Observe(time.Since(start).Seconds())
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	_ = json.NewEncoder(w).Encode(out)
	tr.end(http.StatusOK, "", out)

	ev := log.Info()
	if out.notPackage != "" || out.DeadLettered > 0 {
		ev = log.Warn()
		if out.notPackage != "" {
			ev = ev.Str("deadletter_reason", out.notPackage)
		}
	}
	ev.Int("events", out.Events).Int("published", out.Published).Int("duplicates", out.Duplicates).
		Int("deadlettered", out.DeadLettered).Float64("duration_ms", float64(time.Since(start).Microseconds())/1000).
		Msg("webhook package stored")
}

// handle admits (see HeadVerifier), splits and publishes one request,
// traced by tr (nil: untraced).
func (h *Handler) handle(w http.ResponseWriter, r *http.Request, tr *packageTrace) (outcome, error) {
	if r.URL.Path != h.path {
		return outcome{}, fmt.Errorf("%w: %s", ErrNotFound, r.URL.Path)
	}
	if r.Method != http.MethodPost {
		return outcome{}, fmt.Errorf("%w: %s", ErrMethodNotAllowed, r.Method)
	}
	if !h.allowedSource(r) {
		w.Header().Set("Connection", "close")
		return outcome{}, fmt.Errorf("%w: %s", ErrForbidden, r.RemoteAddr)
	}
	if h.ready != nil {
		if err := h.ready(); err != nil {
			return outcome{}, fmt.Errorf("%w: %w", ErrNotReady, gateError{err})
		}
	}
	verifying := tr.verifying()
	body, verified, release, err := h.admitBody(w, r)
	if err != nil {
		verifying.end(err)
		return outcome{}, err
	}
	defer release()
	requestID := ""
	if id, ok := hlog.IDFromRequest(r); ok {
		requestID = id.String()
	}
	// The body is parsed while its signature is still being checked, as
	// far as a package from Upvest needs (see speculativeLimits); nothing
	// is published before the signature holds.
	msgs, out, err := h.messagesWithin(body, requestID, speculativeLimits(len(body)))
	whole := err == nil
	err = verified()
	verifying.end(err)
	if err != nil {
		return outcome{}, err
	}
	if !whole {
		msgs, out = h.messages(body, requestID)
	}
	// Only a verified package takes a publishing slot.
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		return outcome{}, fmt.Errorf("%w: limit %d", ErrOverloaded, h.maxInFlight)
	}
	publishing := tr.publishing(msgs)
	err = h.publish(r.Context(), msgs, &out)
	publishing.end(err)
	if err != nil {
		return outcome{}, err
	}
	return out, nil
}

// admitBody returns the body of r and verified, which waits for the
// signature's verdict (nil when it holds). With a HeadVerifier the head is
// checked before any of the body is read, a refused head closing the
// connection instead of reading the rest, and the body is returned once it
// has arrived and matches its digest, possibly while the signature is still
// being verified. Otherwise the body is read first and verified whole.
func (h *Handler) admitBody(w http.ResponseWriter, r *http.Request) (body []byte, verified func() error, release func(), err error) {
	if hv, ok := h.verifier.(HeadVerifier); ok {
		head, err := hv.CheckHead(r.Context(), r)
		if err != nil {
			w.Header().Set("Connection", "close")
			return nil, nil, func() {}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		return h.readVerified(w, r, head)
	}
	body, release, err = h.readBody(w, r, nil)
	if err != nil {
		return nil, nil, release, err
	}
	if err := h.verifier.Verify(r.Context(), r, body); err != nil {
		release()
		return nil, nil, func() {}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return body, func() error { return nil }, release, nil
}

// messages turns a body that matches its digest into the messages to
// publish once its signature holds, built one at a time as they are
// published: one per event, a dead letter per malformed event, or a single
// dead letter for a body that is not a package. It only reads the body.
func (h *Handler) messages(body []byte, requestID string) (*publication, outcome) {
	p, out, _ := h.messagesWithin(body, requestID, parseLimits{})
	return p, out
}

// speculativeDepth is how deep arrays and objects may nest in a body
// parsed before its signature holds; Upvest's events nest a few levels.
const speculativeDepth = 64

// speculativeLimits is how far a body of n bytes is parsed before its
// signature holds: one element per 256 bytes (at least 1024) and
// speculativeDepth levels. Upvest's events take several hundred bytes
// each and nest a few levels, so its packages stay within them. A forged
// body would otherwise cost the parse many times its size: millions of
// one-byte elements make element records (350 times the body), ten
// thousand nested arrays a megabyte of stack per 20 KB, held while the
// request waits for its verdict. A body beyond them is parsed whole only
// once its signature holds.
func speculativeLimits(n int) parseLimits {
	return parseLimits{elements: max(1024, n/256), depth: speculativeDepth}
}

// messagesWithin is messages, except that it gives up with errParseLimit,
// building nothing, on a body beyond lim.
func (h *Handler) messagesWithin(body []byte, requestID string, lim parseLimits) (*publication, outcome, error) {
	pp, err := parsePackageWithin(body, lim)
	if errors.Is(err, errParseLimit) {
		return nil, outcome{}, err
	}
	p := &publication{body: body, requestID: requestID, b: newMsgBuilder(h.prefix, h.sourceBase, h.types)}
	if err != nil {
		reason := deadLetterReason(err)
		p.whole = deadLetterMsg(h.prefix, h.sourceBase, sha256.Sum256(body), body, reason, requestID, -1)
		return p, outcome{notPackage: reason}, nil
	}
	p.pp = pp
	p.findRepeats()
	return p, outcome{Events: len(pp.elems)}, nil
}

// publish stores every message of p in package order (see storeInOrder),
// at most ackTimeout, counting what was acknowledged into out and the
// metrics, and fails with ErrUnavailable unless everything was.
func (h *Handler) publish(ctx context.Context, p *publication, out *outcome) error {
	if p.len() == 0 {
		return nil
	}
	start := time.Now()
	defer func() { h.metrics.publishDuration.Observe(time.Since(start).Seconds()) }()
	ctx, cancel := context.WithTimeout(ctx, h.ackTimeout)
	defer cancel()
	if err := h.storeInOrder(ctx, p, out); err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil
}
