package relay_test

import (
	"bytes"
	"net"
	"net/http"
	"net/http/httptest"

	"github.com/nats-io/nats.go/jetstream"
)

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
