package relay

import (
	"context"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/nats-io/nats.go"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// traceCallSites runs what the handler does for tracing on one package of
// msgs: the server span, the verify span, the publish span with the
// message headers, and the end of the server span.
func traceCallSites(h *Handler, req *http.Request, msgs []pending) {
	_, tr := h.startTrace(req)
	v := tr.verifying()
	v.end(nil)
	p := tr.publishing(msgs)
	p.end(nil)
	tr.end(http.StatusOK, "", outcome{Events: len(msgs), Published: len(msgs)})
}

func benchMessages(n int) []pending {
	msgs := make([]pending, n)
	for i := range msgs {
		msgs[i] = pending{msg: &nats.Msg{Subject: "upvest.order.filled", Header: nats.Header{HeaderMsgID: {"id"}}}, family: "order"}
	}
	return msgs
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
		msgs := benchMessages(10)
		if n := testing.AllocsPerRun(100, func() { traceCallSites(h, req, msgs) }); n != 0 {
			t.Errorf("provider %T: %v allocations per package, want 0", tp, n)
		}
		for _, m := range msgs {
			if len(m.msg.Header) != 1 {
				t.Errorf("provider %T: headers %v, want only Nats-Msg-Id", tp, m.msg.Header)
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
			msgs := benchMessages(10)
			b.ReportAllocs()
			for b.Loop() {
				traceCallSites(h, req, msgs)
			}
		})
	}
}
