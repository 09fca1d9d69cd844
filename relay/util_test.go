package relay_test

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"

	"github.com/nats-io/nats.go/jetstream"
)

// syncBuffer is a bytes.Buffer safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }

func jetstreamConfig(name, subject string) jetstream.StreamConfig {
	return jetstream.StreamConfig{Name: name, Subjects: []string{subject}, Storage: jetstream.FileStorage}
}

// postRecorder drives h directly, without a network round trip.
func postRecorder(h http.Handler, body []byte) *httptest.ResponseRecorder {
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/webhooks/upvest", bytes.NewReader(body))
	h.ServeHTTP(rec, req)
	return rec
}
