package emulator

import (
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault makes matching API requests misbehave, before any authentication,
// as a throttling gateway or a failing backend would.
type Fault struct {
	// Method matches the request method; "" matches any.
	Method string
	// PathPrefix matches the start of the request path; "" matches any.
	PathPrefix string
	// Status, when non-zero, is answered with a problem+json body instead of
	// handling the request (e.g. 429, 500, 503, 504).
	Status int
	// RetryAfter is sent as Retry-After (whole seconds, at least 1) with a
	// 429 or 503; 429 always carries one.
	RetryAfter time.Duration
	// Latency delays the request (before the status, or before normal
	// handling when Status is 0).
	Latency time.Duration
	// CloseConnection drops the connection without an answer (after
	// Latency), as a crashed backend or a reset would.
	CloseConnection bool
	// Times is how many matching requests the fault affects; 0 means every
	// one until ClearFaults.
	Times int
}

type fault struct {
	Fault
	used int
}

// InjectFault adds f. Faults are checked in the order injected; the first
// that matches and is not used up applies.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, &fault{Fault: f})
}

// ClearFaults removes every injected fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

func (s *Server) takeFault(r *http.Request) (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
			continue
		}
		if !strings.HasPrefix(r.URL.Path, f.PathPrefix) {
			continue
		}
		f.used++
		if f.Times > 0 && f.used >= f.Times {
			s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
		}
		return f.Fault, true
	}
	return Fault{}, false
}

// applyFault applies a matching fault. handled reports that the request is
// finished: res is the answer to write, or nil when the connection was
// dropped or the server is closing.
func (s *Server) applyFault(w http.ResponseWriter, r *http.Request) (res *result, handled bool) {
	f, ok := s.takeFault(r)
	if !ok {
		return nil, false
	}
	if f.Latency > 0 {
		t := time.NewTimer(f.Latency)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
			return nil, true
		case <-s.ctx.Done():
			return nil, true
		}
	}
	if f.CloseConnection {
		if hj, ok := w.(http.Hijacker); ok {
			if conn, _, err := hj.Hijack(); err == nil {
				_ = conn.Close()
				return nil, true
			}
		}
		panic(http.ErrAbortHandler)
	}
	if f.Status == 0 {
		return nil, false
	}
	out := problemResult(f.Status, "injected fault")
	if f.Status == http.StatusTooManyRequests || (f.Status == http.StatusServiceUnavailable && f.RetryAfter > 0) {
		secs := int(math.Ceil(f.RetryAfter.Seconds()))
		if secs < 1 {
			secs = 1
		}
		out.header = http.Header{"Retry-After": {strconv.Itoa(secs)}}
	}
	return &out, true
}
