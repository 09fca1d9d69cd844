package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/rs/zerolog"
)

// maxRequestBody bounds API request bodies.
const maxRequestBody = 1 << 20

// Server is a running emulator. Create it with New and stop it with Close.
// All methods are safe for concurrent use.
type Server struct {
	cfg    config
	ln     net.Listener
	srv    *http.Server
	url    string
	client *http.Client

	// ctx is cancelled by Close; every goroutine and in-flight delivery of
	// the server watches it.
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	// idemMu serialises requests carrying idempotency keys, so that a
	// repeated key never runs twice. Taken before mu.
	idemMu sync.Mutex

	mu       sync.Mutex
	closed   bool // set by Close; no goroutine starts afterwards
	tenants  map[string]*tenant
	tokens   map[string]*token
	keys     []*signingKey // the last one signs
	webhooks map[string]*webhook
	// deliverers holds every webhook's delivery state, deleted ones too,
	// so that their stats stay readable.
	deliverers map[string]*deliverer
	idem       map[idemKey]*idemEntry
	faults     []*fault
	calls      map[string]int
	failures   []AuthFailure
}

type config struct {
	addr          string
	log           zerolog.Logger
	now           func() time.Time
	delayScale    float64
	backoffScale  float64
	client        *http.Client
	tokenLifetime time.Duration
	keyRetention  time.Duration
	observer      func(DeliveryAttempt)
	extraHeaders  http.Header
}

// Option configures a Server.
type Option func(*config)

// WithAddr listens on addr (host:port) instead of 127.0.0.1 on a random port.
func WithAddr(addr string) Option { return func(c *config) { c.addr = addr } }

// WithLogger logs API calls and deliveries to l. The default discards logs.
// Secrets, tokens and signatures are never logged.
func WithLogger(l zerolog.Logger) Option { return func(c *config) { c.log = l } }

// WithClock sets the clock used for timestamps (created_at, signature
// created/expires on webhooks, token expiry and request-signature
// freshness). Scheduling of deliveries always uses real timers; see
// WithTimeScale.
func WithClock(now func() time.Time) Option { return func(c *config) { c.now = now } }

// WithTimeScale multiplies every wait of the delivery engine (config.delay
// collection windows and retry back-offs) by f, e.g. 0.001 turns Upvest's
// 1 s into 1 ms so tests run fast. f must be > 0.
func WithTimeScale(f float64) Option {
	return func(c *config) { c.delayScale, c.backoffScale = f, f }
}

// WithDelayScale multiplies config.delay collection windows by f (> 0).
func WithDelayScale(f float64) Option { return func(c *config) { c.delayScale = f } }

// WithBackoffScale multiplies retry back-offs by f (> 0).
func WithBackoffScale(f float64) Option { return func(c *config) { c.backoffScale = f } }

// WithDeliveryClient sends webhook packages with client, e.g. an
// httptest.Server's Client() to trust its certificate. The default client
// has a 30 s timeout and does not follow redirects (a 3xx is a failed
// delivery, as at Upvest).
func WithDeliveryClient(client *http.Client) Option {
	return func(c *config) { c.client = client }
}

// WithTokenLifetime sets the lifetime of issued access tokens (default 1 h),
// so tests can force a refresh.
func WithTokenLifetime(d time.Duration) Option {
	return func(c *config) { c.tokenLifetime = d }
}

// WithKeyRetention sets how long a rotated-out webhook-signing key stays
// published in /auth/verify_keys (default 1 h).
func WithKeyRetention(d time.Duration) Option {
	return func(c *config) { c.keyRetention = d }
}

// WithDeliveryObserver calls fn after every delivery attempt, from the
// webhook's delivery goroutine; fn must return quickly and must not call
// Close.
func WithDeliveryObserver(fn func(DeliveryAttempt)) Option {
	return func(c *config) { c.observer = fn }
}

// WithDeliveryHeaders adds h to every delivery request before it is signed.
// Like every header present at signing time they are covered by the
// signature (in random order) unless their names start with cf-, cdn-,
// cookie or x-, which Upvest's signer skips. Use it to exercise a verifier
// with more headers than Upvest's Content-Type.
func WithDeliveryHeaders(h http.Header) Option {
	return func(c *config) { c.extraHeaders = h.Clone() }
}

// New starts an emulator listening on 127.0.0.1 on a random port (see
// WithAddr), with one webhook-signing key and no tenants.
func New(opts ...Option) (*Server, error) {
	cfg := config{
		addr:          "127.0.0.1:0",
		log:           zerolog.Nop(),
		now:           time.Now,
		delayScale:    1,
		backoffScale:  1,
		tokenLifetime: time.Hour,
		keyRetention:  time.Hour,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.delayScale <= 0 || cfg.backoffScale <= 0 {
		return nil, errors.New("emulator: time scales must be > 0")
	}
	if cfg.tokenLifetime < time.Second {
		return nil, errors.New("emulator: token lifetime must be at least 1s")
	}
	if cfg.now == nil {
		return nil, errors.New("emulator: nil clock")
	}
	client := cfg.client
	if client == nil {
		client = &http.Client{
			Timeout:   30 * time.Second,
			Transport: http.DefaultTransport.(*http.Transport).Clone(),
			CheckRedirect: func(*http.Request, []*http.Request) error {
				return http.ErrUseLastResponse
			},
		}
	}
	key, err := newSigningKey()
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", cfg.addr)
	if err != nil {
		return nil, fmt.Errorf("emulator: listen: %w", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:        cfg,
		ln:         ln,
		url:        "http://" + ln.Addr().String(),
		client:     client,
		ctx:        ctx,
		cancel:     cancel,
		tenants:    map[string]*tenant{},
		tokens:     map[string]*token{},
		keys:       []*signingKey{key},
		webhooks:   map[string]*webhook{},
		deliverers: map[string]*deliverer{},
		idem:       map[idemKey]*idemEntry{},
		calls:      map[string]int{},
	}
	s.srv = &http.Server{
		Handler:           s.routes(),
		ReadHeaderTimeout: 10 * time.Second,
		BaseContext:       func(net.Listener) context.Context { return ctx },
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.cfg.log.Error().Err(err).Msg("emulator: serve")
		}
	}()
	return s, nil
}

// URL is the base URL of the API, e.g. "http://127.0.0.1:43123", to use as
// RELAY_UPVEST_BASE_URL.
func (s *Server) URL() string { return s.url }

// Close stops the HTTP server, every delivery (in-flight attempts are
// cancelled, queued packages are dropped) and waits for all goroutines.
// It is safe to call more than once.
func (s *Server) Close() {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			_ = s.srv.Close()
		}
		s.wg.Wait()
		if s.cfg.client == nil {
			s.client.CloseIdleConnections()
		}
	})
}

func (s *Server) now() time.Time { return s.cfg.now().UTC() }

// Problem is Upvest's application/problem+json error body.
type Problem struct {
	Type      string `json:"type"`
	Status    int    `json:"status"`
	Title     string `json:"title,omitempty"`
	Detail    string `json:"detail,omitempty"`
	Instance  string `json:"instance,omitempty"`
	RequestID string `json:"request_id,omitempty"`
}

// problemType returns Upvest's problem type slug and title for status.
func problemType(status int) (slug, title string) {
	switch status {
	case http.StatusBadRequest:
		return "bad_request", "Bad Request"
	case http.StatusUnauthorized:
		return "unauthorised", "Unauthorised"
	case http.StatusForbidden:
		return "forbidden", "Forbidden"
	case http.StatusNotFound:
		return "not_found", "Not Found"
	case http.StatusNotAcceptable:
		return "not_acceptable", "Not Acceptable"
	case http.StatusConflict:
		return "conflict", "Conflict"
	case http.StatusRequestEntityTooLarge:
		return "payload_too_large", "Payload Too Large"
	case http.StatusUnsupportedMediaType:
		return "unsupported_media_type", "Unsupported Media Type"
	case http.StatusUnprocessableEntity:
		return "unprocessable_entity", "Unprocessable Entity"
	case http.StatusTooManyRequests:
		return "too_many_requests", "Too Many Requests"
	case http.StatusInternalServerError:
		return "internal_server_error", "Internal Server Error"
	case http.StatusServiceUnavailable:
		return "service_unavailable", "Service Unavailable"
	case http.StatusGatewayTimeout:
		return "gateway_timeout", "Gateway Timeout"
	}
	return "", http.StatusText(status)
}

func newProblem(status int, detail string) *Problem {
	slug, title := problemType(status)
	p := &Problem{Type: "about:blank", Status: status, Title: title, Detail: detail}
	if slug != "" {
		p.Type = "https://docs.upvest.co/errors/" + slug
	}
	return p
}

// result is what an API handler answers; it is stored for idempotent
// replays before it is written.
type result struct {
	status  int
	body    []byte // JSON; nil for no body
	problem *Problem
	header  http.Header
}

func jsonResult(status int, v any) result {
	b, err := json.Marshal(v)
	if err != nil {
		return problemResult(http.StatusInternalServerError, "encoding response: %v", err)
	}
	return result{status: status, body: b}
}

func problemResult(status int, format string, args ...any) result {
	detail := format
	if len(args) > 0 {
		detail = fmt.Sprintf(format, args...)
	}
	return result{status: status, problem: newProblem(status, detail)}
}

func (res result) write(w http.ResponseWriter, r *http.Request, requestID string) {
	for k, v := range res.header {
		w.Header()[k] = v
	}
	if res.problem != nil {
		p := *res.problem
		p.Instance = r.URL.Path
		p.RequestID = requestID
		b, _ := json.Marshal(p)
		w.Header().Set("Content-Type", "application/problem+json")
		w.Header().Set("Content-Length", strconv.Itoa(len(b)))
		w.WriteHeader(res.status)
		_, _ = w.Write(b)
		return
	}
	if res.body == nil {
		w.WriteHeader(res.status)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(res.body)))
	w.WriteHeader(res.status)
	_, _ = w.Write(res.body)
}

// call is one authenticated API request as a handler sees it.
type call struct {
	r      *http.Request
	body   []byte
	tenant *tenant
}

// route is one API endpoint.
type route struct {
	pattern string // ServeMux pattern, e.g. "GET /webhooks/{id}"
	scope   string // required token scope; "" on the token call
	handle  func(*call) result
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	for _, rt := range []route{
		{"POST /auth/token", "", s.handleToken},
		{"GET /auth/verify_keys", scopeRead, s.handleVerifyKeys},
		{"GET /webhooks", scopeRead, s.handleListWebhooks},
		{"POST /webhooks", scopeAdmin, s.handleCreateWebhook},
		{"GET /webhooks/{id}", scopeRead, s.handleGetWebhook},
		{"PATCH /webhooks/{id}", scopeAdmin, s.handlePatchWebhook},
		{"DELETE /webhooks/{id}", scopeAdmin, s.handleDeleteWebhook},
		{"POST /webhooks/{id}/test", scopeAdmin, s.handleTestWebhook},
	} {
		mux.Handle(rt.pattern, s.serve(rt))
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		id := uuid.NewString()
		w.Header().Set("Upvest-Request-Id", id)
		s.count(r.Method, "")
		problemResult(http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path).write(w, r, id)
	})
	return mux
}

// serve wraps an endpoint with what every Upvest API call goes through:
// request id, call counting, injected faults, body limit, request
// signature, bearer token and scope, Accept, and idempotency keys.
func (s *Server) serve(rt route) http.Handler {
	method, path, _ := strings.Cut(rt.pattern, " ")
	isToken := rt.scope == ""
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requestID := uuid.NewString()
		w.Header().Set("Upvest-Request-Id", requestID)
		s.count(method, path)
		log := s.cfg.log.With().Str("method", r.Method).Str("path", r.URL.Path).Str("request_id", requestID).Logger()

		if res, handled := s.applyFault(w, r); handled {
			if res != nil {
				log.Debug().Int("status", res.status).Msg("emulator: injected fault")
				res.write(w, r, requestID)
			}
			return
		}

		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBody))
		if err != nil {
			var tooBig *http.MaxBytesError
			if errors.As(err, &tooBig) {
				problemResult(http.StatusRequestEntityTooLarge, "request body exceeds %d bytes", maxRequestBody).write(w, r, requestID)
				return
			}
			problemResult(http.StatusBadRequest, "reading request body: %v", err).write(w, r, requestID)
			return
		}

		res := s.dispatch(r, body, rt, isToken)
		log.Debug().Int("status", res.status).Msg("emulator: api call")
		res.write(w, r, requestID)
	})
}

func (s *Server) dispatch(r *http.Request, body []byte, rt route, isToken bool) result {
	t, res, ok := s.authenticate(r, body, isToken, rt.scope)
	if !ok {
		return res
	}
	if !acceptsJSON(r.Header.Values("Accept")) {
		return problemResult(http.StatusNotAcceptable, "accept must allow application/json, got %q", r.Header.Get("Accept"))
	}
	c := &call{r: r, body: body, tenant: t}
	if isToken || (r.Method != http.MethodPost && r.Method != http.MethodPatch) {
		return rt.handle(c)
	}
	return s.idempotent(c, rt.handle)
}

func acceptsJSON(values []string) bool {
	for _, v := range values {
		for _, part := range strings.Split(v, ",") {
			mt, _, _ := strings.Cut(part, ";")
			switch strings.ToLower(strings.TrimSpace(mt)) {
			case "application/json", "application/*", "*/*", "application/problem+json":
				return true
			}
		}
	}
	return false
}

func (s *Server) count(method, path string) {
	s.mu.Lock()
	s.calls[method+" "+path]++
	s.mu.Unlock()
}

// CallCount reports how many requests reached the endpoint method and
// pattern, as in the API table: e.g. CallCount("GET", "/webhooks"),
// CallCount("PATCH", "/webhooks/{id}"), CallCount("POST", "/auth/token").
// Every request counts, including rejected ones and injected faults.
// CallCount("", "") counts requests to unknown endpoints.
func (s *Server) CallCount(method, pattern string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if method == "" && pattern == "" {
		n := 0
		for k, v := range s.calls {
			if strings.HasSuffix(k, " ") {
				n += v
			}
		}
		return n
	}
	return s.calls[method+" "+pattern]
}
