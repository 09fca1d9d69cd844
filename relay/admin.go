package relay

import (
	"context"
	"encoding/json"
	"net/http"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is a readiness check: nil while the component it watches is
// ready. It must return promptly once ctx ends.
type Check func(ctx context.Context) error

// DefaultCheckTimeout bounds each readiness check.
const DefaultCheckTimeout = 200 * time.Millisecond

// AdminOption tunes NewAdmin.
type AdminOption func(*Admin)

// WithCheckTimeout bounds each readiness check (default 200 ms, so that
// /readyz answers within 250 ms in every state).
func WithCheckTimeout(d time.Duration) AdminOption {
	return func(a *Admin) { a.checkTimeout = d }
}

// Admin serves the operational endpoints:
//
//	/healthz  200 while the process runs
//	/readyz   200 when every registered check passes, else 503; the JSON
//	          body lists each check's state and every detail
//	/metrics  Prometheus exposition of the given Gatherer
//
// Checks and details may be added at any time, also while serving.
type Admin struct {
	checkTimeout time.Duration
	metrics      http.Handler

	mu      sync.Mutex
	checks  map[string]Check
	details map[string]func() any
}

// NewAdmin returns the admin handler exposing g on /metrics.
func NewAdmin(g prometheus.Gatherer, opts ...AdminOption) *Admin {
	a := &Admin{
		checkTimeout: DefaultCheckTimeout,
		metrics:      promhttp.HandlerFor(g, promhttp.HandlerOpts{}),
		checks:       make(map[string]Check),
		details:      make(map[string]func() any),
	}
	for _, o := range opts {
		o(a)
	}
	return a
}

// AddCheck registers (or replaces) the readiness check name.
func (a *Admin) AddCheck(name string, c Check) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.checks[name] = c
}

// AddDetail registers (or replaces) a detail shown on /readyz under name,
// e.g. the control loop's state. d's result is encoded as JSON; it does
// not affect readiness.
func (a *Admin) AddDetail(name string, d func() any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.details[name] = d
}

// ServeHTTP implements http.Handler.
func (a *Admin) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch r.URL.Path {
	case "/healthz":
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	case "/readyz":
		a.serveReady(w, r)
	case "/metrics":
		a.metrics.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}

// CheckState is one check's entry in the /readyz body.
type CheckState struct {
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Readiness is the /readyz body.
type Readiness struct {
	Ready   bool                  `json:"ready"`
	Checks  map[string]CheckState `json:"checks"`
	Details map[string]any        `json:"details,omitempty"`
}

// Ready runs every check, concurrently, each bounded by the check
// timeout, and reports their states and the details.
func (a *Admin) Ready(ctx context.Context) Readiness {
	a.mu.Lock()
	checks := make(map[string]Check, len(a.checks))
	for n, c := range a.checks {
		checks[n] = c
	}
	details := make(map[string]func() any, len(a.details))
	for n, d := range a.details {
		details[n] = d
	}
	a.mu.Unlock()

	res := Readiness{Ready: true, Checks: make(map[string]CheckState, len(checks))}
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for name, check := range checks {
		wg.Go(func() {
			cctx, cancel := context.WithTimeout(ctx, a.checkTimeout)
			defer cancel()
			st := CheckState{OK: true}
			if err := check(cctx); err != nil {
				st = CheckState{Error: err.Error()}
			}
			mu.Lock()
			defer mu.Unlock()
			res.Checks[name] = st
			res.Ready = res.Ready && st.OK
		})
	}
	wg.Wait()
	if len(details) > 0 {
		res.Details = make(map[string]any, len(details))
		for n, d := range details {
			res.Details[n] = d()
		}
	}
	return res
}

func (a *Admin) serveReady(w http.ResponseWriter, r *http.Request) {
	res := a.Ready(r.Context())
	status := http.StatusOK
	if !res.Ready {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, res)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
