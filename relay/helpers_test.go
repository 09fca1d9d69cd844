package relay_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/relay"
)

const (
	webhookPath = "/webhooks/upvest"
	streamName  = "UPVEST"
	sourceBase  = "https://sandbox.upvest.co"
)

// verifierFunc is a test Verifier; the real one is tested in package
// verify.
type verifierFunc func(ctx context.Context, r *http.Request, body []byte) error

func (f verifierFunc) Verify(ctx context.Context, r *http.Request, body []byte) error {
	return f(ctx, r, body)
}

var acceptAll = verifierFunc(func(context.Context, *http.Request, []byte) error { return nil })

// fixture is a relay handler behind a real HTTP server, publishing into a
// real embedded JetStream.
type fixture struct {
	t       testing.TB
	srv     *server.Server
	nc      *nats.Conn
	js      jetstream.JetStream
	reg     *prometheus.Registry
	handler *relay.Handler
	http    *httptest.Server
}

func newFixture(t testing.TB, v relay.Verifier, opts ...relay.Option) *fixture {
	t.Helper()
	srv, nc, js := brokertest.New(t)
	ensureStream(t, js)
	reg := prometheus.NewRegistry()
	h, err := relay.NewHandler(webhookPath, v, js, append([]relay.Option{relay.WithRegisterer(reg)}, opts...)...)
	if err != nil {
		t.Fatalf("NewHandler: %v", err)
	}
	hs := httptest.NewServer(h)
	t.Cleanup(hs.Close)
	return &fixture{t: t, srv: srv, nc: nc, js: js, reg: reg, handler: h, http: hs}
}

func ensureStream(t testing.TB, js jetstream.JetStream) {
	t.Helper()
	_, err := broker.EnsureStream(context.Background(), js, broker.StreamOptions{
		Name: streamName, Prefix: "upvest", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Hour,
	})
	if err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
}

// response is a read answer.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (f *fixture) post(body []byte) response {
	f.t.Helper()
	return f.do(http.MethodPost, webhookPath, bytes.NewReader(body))
}

func (f *fixture) do(method, path string, body io.Reader) response {
	f.t.Helper()
	req, err := http.NewRequest(method, f.http.URL+path, body)
	if err != nil {
		f.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	return send(f.t, req)
}

func send(t testing.TB, req *http.Request) response {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// stored returns every message in the stream, in order.
func (f *fixture) stored() []*jetstream.RawStreamMsg {
	f.t.Helper()
	return storedIn(f.t, f.js)
}

func storedIn(t testing.TB, js jetstream.JetStream) []*jetstream.RawStreamMsg {
	t.Helper()
	s, err := js.Stream(context.Background(), streamName)
	if err != nil {
		t.Fatalf("stream: %v", err)
	}
	return relay.StoredMsgs(t, s)
}

// metric returns the value of the counter (or the sample count of the
// histogram) name with exactly labels, 0 if absent.
func (f *fixture) metric(name string, labels ...string) float64 {
	f.t.Helper()
	families, err := f.reg.Gather()
	if err != nil {
		f.t.Fatalf("gather: %v", err)
	}
	for _, fam := range families {
		if fam.GetName() != name {
			continue
		}
		for _, m := range fam.GetMetric() {
			if !labelsMatch(m, labels) {
				continue
			}
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
		}
	}
	return 0
}

func labelsMatch(m *dto.Metric, kv []string) bool {
	if len(m.GetLabel())*2 != len(kv) {
		return false
	}
	for i := 0; i < len(kv); i += 2 {
		found := false
		for _, l := range m.GetLabel() {
			if l.GetName() == kv[i] && l.GetValue() == kv[i+1] {
				found = true
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// event renders an Upvest event element; its whitespace and key order are
// deliberately not what encoding/json would produce.
func event(id, typ string) string {
	return fmt.Sprintf(`{ "id":%q,  "created_at":"2024-05-01T10:00:00.123456Z", "type":%q,
      "object":{"id":"obj-%s","amount":"10.50","note":"caf\u00e9"}, "webhook_id":"b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11" }`, id, typ, id)
}

// pkg wraps events in a package, with unusual whitespace around them.
func pkg(events ...string) []byte {
	return []byte("{ \"payload\" : [\n  " + strings.Join(events, " ,\n  ") + "\n] }")
}

// problem decodes an application/problem+json answer.
type problem struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

func decodeProblem(t testing.TB, r response) problem {
	t.Helper()
	if got := r.header.Get("Content-Type"); got != "application/problem+json" {
		t.Errorf("Content-Type = %q, want application/problem+json", got)
	}
	var p problem
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatalf("problem body %q: %v", r.body, err)
	}
	if p.Status != r.status || p.Title == "" || p.Type == "" {
		t.Errorf("problem = %+v, want type, title and status %d", p, r.status)
	}
	return p
}
