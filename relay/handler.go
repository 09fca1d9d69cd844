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
	"time"

	"github.com/nats-io/nats.go"
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

// Publisher is the part of jetstream.JetStream the handler uses.
type Publisher interface {
	PublishMsgAsync(msg *nats.Msg, opts ...jetstream.PublishOpt) (jetstream.PubAckFuture, error)
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

	slots   chan struct{}
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
	h.slots = make(chan struct{}, h.maxInFlight)
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
	body, release, err := h.admitBody(w, r)
	verifying.end(err)
	if err != nil {
		return outcome{}, err
	}
	defer release()
	// Only a verified package takes a publishing slot.
	select {
	case h.slots <- struct{}{}:
		defer func() { <-h.slots }()
	default:
		return outcome{}, fmt.Errorf("%w: limit %d", ErrOverloaded, h.maxInFlight)
	}
	requestID := ""
	if id, ok := hlog.IDFromRequest(r); ok {
		requestID = id.String()
	}
	msgs, out := h.messages(body, requestID)
	publishing := tr.publishing(msgs)
	err = h.publish(r.Context(), msgs, &out)
	publishing.end(err)
	if err != nil {
		return outcome{}, err
	}
	return out, nil
}

// admitBody returns the verified body of r. With a HeadVerifier the head is
// checked before any of the body is read; a refused head closes the
// connection instead of reading the rest. Otherwise the body is read first
// and verified whole.
func (h *Handler) admitBody(w http.ResponseWriter, r *http.Request) ([]byte, func(), error) {
	if hv, ok := h.verifier.(HeadVerifier); ok {
		head, err := hv.CheckHead(r.Context(), r)
		if err != nil {
			w.Header().Set("Connection", "close")
			return nil, func() {}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
		}
		return h.readVerified(w, r, head)
	}
	body, release, err := h.readBody(w, r, nil)
	if err != nil {
		return nil, release, err
	}
	if err := h.verifier.Verify(r.Context(), r, body); err != nil {
		release()
		return nil, func() {}, fmt.Errorf("%w: %w", ErrUnauthorized, err)
	}
	return body, release, nil
}

// pending is one message to publish and what its PubAck counts as.
type pending struct {
	msg    *nats.Msg
	family string // metric label; "" for a dead letter
}

// messages turns a verified body into the messages to publish: one per
// event, a dead letter per malformed event, or a single dead letter for a
// body that is not a package.
func (h *Handler) messages(body []byte, requestID string) ([]pending, outcome) {
	events, err := Split(body)
	if err != nil {
		reason := deadLetterReason(err)
		return []pending{{msg: deadLetterMsg(h.prefix, h.sourceBase, sha256.Sum256(body), body, reason, requestID, -1)}},
			outcome{notPackage: reason}
	}
	msgs := make([]pending, 0, len(events))
	var pkg *packageDigest // computed for the first dead letter only
	for i, raw := range events {
		ev, err := parseEvent(raw)
		if err != nil {
			if pkg == nil {
				sum := packageDigest(sha256.Sum256(body))
				pkg = &sum
			}
			msgs = append(msgs, pending{msg: deadLetterMsg(h.prefix, h.sourceBase, *pkg, raw, deadLetterReason(err), requestID, i)})
			continue
		}
		msgs = append(msgs, pending{
			msg:    eventMsg(h.prefix, h.sourceBase, ev),
			family: familyLabel(subjects.Family(ev.typ)),
		})
	}
	return msgs, outcome{Events: len(events)}
}

// publish sends every message asynchronously and waits, at most
// ackTimeout, for all their PubAcks. It counts what was acked into out and
// the metrics, and fails with ErrUnavailable unless everything was.
func (h *Handler) publish(ctx context.Context, msgs []pending, out *outcome) error {
	if len(msgs) == 0 {
		return nil
	}
	start := time.Now()
	defer func() { h.metrics.publishDuration.Observe(time.Since(start).Seconds()) }()

	futures := make([]jetstream.PubAckFuture, 0, len(msgs))
	var failed error
	for _, m := range msgs {
		f, err := h.pub.PublishMsgAsync(m.msg)
		if err != nil {
			failed = fmt.Errorf("publish to %s: %w", m.msg.Subject, err)
			break
		}
		futures = append(futures, f)
	}

	timer := time.NewTimer(h.ackTimeout)
	defer timer.Stop()
	acked := 0
	// retry fires when the message at i, which JetStream reported as "in
	// process" (another replica, or an attempt of ours, is storing the same
	// event id right now), is to be published again: the answer will be the
	// duplicate PubAck that says it is stored, instead of a needless 503.
	var retry <-chan time.Time
wait:
	for i := 0; i < len(futures); {
		var (
			okc  <-chan *jetstream.PubAck
			errc <-chan error
		)
		if retry == nil {
			okc, errc = futures[i].Ok(), futures[i].Err()
		}
		select {
		case ack := <-okc:
			acked++
			h.count(msgs[i], ack, out)
			i++
		case err := <-errc:
			if inProcess(err) {
				retry = time.After(inProcessRetry)
				continue
			}
			if failed == nil {
				failed = fmt.Errorf("publish to %s: %w", msgs[i].msg.Subject, err)
			}
			i++
		case <-retry:
			retry = nil
			f, err := h.pub.PublishMsgAsync(msgs[i].msg)
			if err != nil {
				failed = fmt.Errorf("publish to %s: %w", msgs[i].msg.Subject, err)
				break wait
			}
			futures[i] = f
		case <-timer.C:
			failed = fmt.Errorf("%d of %d PubAcks missing after %s", len(msgs)-acked, len(msgs), h.ackTimeout)
			break wait
		case <-ctx.Done():
			failed = fmt.Errorf("%d of %d PubAcks missing: %w", len(msgs)-acked, len(msgs), ctx.Err())
			break wait
		}
	}
	if failed != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, failed)
	}
	return nil
}

// inProcessRetry is the pause before asking again about an event id that
// JetStream reports as being stored by a concurrent publish.
const inProcessRetry = 20 * time.Millisecond

// jsErrDuplicateInProcess is JetStream's "duplicate message id is in
// process" (a clustered stream is still committing the same Nats-Msg-Id).
const jsErrDuplicateInProcess jetstream.ErrorCode = 10158

func inProcess(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsErrDuplicateInProcess
}

// count books one PubAck.
func (h *Handler) count(p pending, ack *jetstream.PubAck, out *outcome) {
	switch {
	case ack.Duplicate:
		out.Duplicates++
		h.metrics.deduplicated.Inc()
	case p.family == "":
		out.DeadLettered++
		h.metrics.deadlettered.Inc()
	default:
		out.Published++
		h.metrics.published.WithLabelValues(p.family).Inc()
	}
}
