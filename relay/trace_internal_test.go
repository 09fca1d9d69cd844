package relay

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// traceCallSites runs what the handler does for tracing on one package of
// msgs: the server span, the verify span, the publish span with the
// message headers, and the end of the server span.
func traceCallSites(h *Handler, req *http.Request, msgs *publication) {
	_, tr := h.startTrace(req)
	v := tr.verifying()
	v.end(nil)
	p := tr.publishing(msgs)
	p.end(nil)
	tr.end(http.StatusOK, "", outcome{Events: msgs.len(), Published: msgs.len()})
}

// benchMessages is a package of n ORDER.FILLED events, parsed as the
// handler parses it.
func benchMessages(h *Handler, n int) *publication {
	var b strings.Builder
	b.WriteString(`{"payload":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"id":"e%d","created_at":"2026-01-01T00:00:00Z","type":"ORDER.FILLED","object":{"id":"o%d"},"webhook_id":"w"}`, i, i)
	}
	b.WriteString(`]}`)
	h.prefix, h.sourceBase, h.types = DefaultPrefix, DefaultSourceBase, newTypeCache(DefaultPrefix)
	p, _ := h.messages([]byte(b.String()), "")
	return p
}

// TestTracingOffAllocatesNothing: with tracing off, by default or with the
// noop provider, the tracing call sites allocate nothing and add no header.
func TestTracingOffAllocatesNothing(t *testing.T) {
	for _, tp := range []trace.TracerProvider{nil, noop.NewTracerProvider()} {
		h := &Handler{path: "/webhooks/upvest"}
		WithTracerProvider(tp)(h)
		if h.tracer != nil {
			t.Fatalf("WithTracerProvider(%T) turned tracing on", tp)
		}
		req := httptest.NewRequest(http.MethodPost, "/webhooks/upvest", nil)
		req.Header.Set("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
		msgs := benchMessages(h, 10)
		if n := testing.AllocsPerRun(100, func() { traceCallSites(h, req, msgs) }); n != 0 {
			t.Errorf("provider %T: %v allocations per package, want 0", tp, n)
		}
		for i := range msgs.len() {
			if m, _ := msgs.msg(i); m.Header.Get(HeaderTraceParent) != "" {
				t.Errorf("provider %T: message %d carries %s", tp, i, HeaderTraceParent)
			}
		}
	}
}

// BenchmarkTraceCallSites measures the tracing call sites alone for a
// package of 10 messages: off (no option), the noop provider, and an SDK
// provider recording every span (export excluded).
func BenchmarkTraceCallSites(b *testing.B) {
	sdk := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
	b.Cleanup(func() { _ = sdk.Shutdown(context.Background()) })
	for _, c := range []struct {
		name string
		tp   trace.TracerProvider
	}{{"off", nil}, {"noop", noop.NewTracerProvider()}, {"sdk", sdk}} {
		b.Run(c.name, func(b *testing.B) {
			h := &Handler{path: "/webhooks/upvest"}
			WithTracerProvider(c.tp)(h)
			req := httptest.NewRequest(http.MethodPost, "/webhooks/upvest", nil)
			msgs := benchMessages(h, 10)
			b.ReportAllocs()
			for b.Loop() {
				traceCallSites(h, req, msgs)
			}
		})
	}
}
