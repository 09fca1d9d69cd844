// Package tracingtest is a real OTLP-over-HTTP trace receiver for tests: an
// HTTP server on a loopback port that decodes the protobuf export requests
// an OTLP exporter POSTs (gzip or not) and keeps their spans, flattened, for
// the test to look at. Point OTEL_EXPORTER_OTLP_ENDPOINT at its URL.
package tracingtest

import (
	"compress/gzip"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"google.golang.org/protobuf/proto"
)

// TracesPath is where an OTLP exporter given only the base URL sends spans.
const TracesPath = "/v1/traces"

// Receiver is a running OTLP/HTTP receiver.
type Receiver struct {
	// URL is the server's base URL (http://127.0.0.1:port, or https://
	// for NewTLSReceiver).
	URL string

	srv *httptest.Server
	mu  sync.Mutex
	// status answers the next requests; 0 means 200 with an empty
	// ExportTraceServiceResponse.
	status   int
	requests []Request
	spans    []Span
}

// Request is one export request as received.
type Request struct {
	Path   string
	Header http.Header
	Spans  int
}

// Span is one received span with its resource, ids in lower-case hex.
type Span struct {
	Name         string
	TraceID      string
	SpanID       string
	ParentSpanID string // "" for a root span
	Kind         tracepb.Span_SpanKind
	Attributes   map[string]any // string, int64, float64 or bool
	StatusCode   tracepb.Status_StatusCode
	StatusMsg    string
	Resource     map[string]any
	Scope        string
}

// NewReceiver starts a receiver over plain HTTP, closed when the test ends.
func NewReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// NewTLSReceiver starts a receiver over HTTPS with a certificate of its own;
// CAFile writes the certificate to trust.
func NewTLSReceiver(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	// Clients that refuse the certificate are what some tests are about.
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.StartTLS()
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// NewMTLSReceiver starts a receiver over HTTPS that accepts only clients
// presenting a certificate signed by one of clientCAs.
func NewMTLSReceiver(t testing.TB, clientCAs *x509.CertPool) *Receiver {
	t.Helper()
	r := &Receiver{}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.TLS = &tls.Config{ClientAuth: tls.RequireAndVerifyClientCert, ClientCAs: clientCAs, MinVersion: tls.VersionTLS12}
	r.srv.StartTLS()
	r.URL = r.srv.URL
	t.Cleanup(r.srv.Close)
	return r
}

// CAFile writes the TLS receiver's certificate as PEM into a file under
// t.TempDir() and returns its path.
func (r *Receiver) CAFile(t testing.TB) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "otlp-ca.pem")
	block := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: r.srv.Certificate().Raw})
	if err := os.WriteFile(path, block, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// Answer makes the receiver answer every following request with status
// (and no spans kept); 0 restores normal answers.
func (r *Receiver) Answer(status int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.status = status
}

// Requests returns the export requests received so far.
func (r *Receiver) Requests() []Request {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Request(nil), r.requests...)
}

// Spans returns the spans received so far, in arrival order.
func (r *Receiver) Spans() []Span {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]Span(nil), r.spans...)
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	var body io.Reader = req.Body
	if req.Header.Get("Content-Encoding") == "gzip" {
		zr, err := gzip.NewReader(req.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		body = zr
	}
	raw, err := io.ReadAll(body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-protobuf" {
		http.Error(w, "want POST of application/x-protobuf", http.StatusUnsupportedMediaType)
		return
	}
	var export coltracepb.ExportTraceServiceRequest
	if err := proto.Unmarshal(raw, &export); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}

	r.mu.Lock()
	status := r.status
	if status == 0 {
		n := 0
		for _, rs := range export.GetResourceSpans() {
			res := attrs(rs.GetResource().GetAttributes())
			for _, ss := range rs.GetScopeSpans() {
				for _, s := range ss.GetSpans() {
					r.spans = append(r.spans, flatten(s, res, ss.GetScope().GetName()))
					n++
				}
			}
		}
		r.requests = append(r.requests, Request{Path: req.URL.Path, Header: req.Header.Clone(), Spans: n})
	}
	r.mu.Unlock()

	if status != 0 {
		http.Error(w, "told to fail", status)
		return
	}
	out, err := proto.Marshal(&coltracepb.ExportTraceServiceResponse{})
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/x-protobuf")
	_, _ = w.Write(out)
}

func flatten(s *tracepb.Span, res map[string]any, scope string) Span {
	parent := ""
	if len(s.GetParentSpanId()) > 0 {
		parent = hex.EncodeToString(s.GetParentSpanId())
	}
	return Span{
		Name:         s.GetName(),
		TraceID:      hex.EncodeToString(s.GetTraceId()),
		SpanID:       hex.EncodeToString(s.GetSpanId()),
		ParentSpanID: parent,
		Kind:         s.GetKind(),
		Attributes:   attrs(s.GetAttributes()),
		StatusCode:   s.GetStatus().GetCode(),
		StatusMsg:    s.GetStatus().GetMessage(),
		Resource:     res,
		Scope:        scope,
	}
}

func attrs(kvs []*commonpb.KeyValue) map[string]any {
	m := make(map[string]any, len(kvs))
	for _, kv := range kvs {
		v := kv.GetValue()
		switch v.GetValue().(type) {
		case *commonpb.AnyValue_StringValue:
			m[kv.GetKey()] = v.GetStringValue()
		case *commonpb.AnyValue_IntValue:
			m[kv.GetKey()] = v.GetIntValue()
		case *commonpb.AnyValue_DoubleValue:
			m[kv.GetKey()] = v.GetDoubleValue()
		case *commonpb.AnyValue_BoolValue:
			m[kv.GetKey()] = v.GetBoolValue()
		default:
			m[kv.GetKey()] = v.String()
		}
	}
	return m
}
