package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	cenats "github.com/cloudevents/sdk-go/protocol/nats_jetstream/v2"
	"github.com/cloudevents/sdk-go/v2/binding"
	"github.com/cloudevents/sdk-go/v2/extensions"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/rs/zerolog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/tracing"
	"github.com/upvest-relay/upvest-relay/tracing/tracingtest"
	"github.com/upvest-relay/upvest-relay/verify"
)

// An incoming W3C trace context, as a proxy in front of the relay would
// send it.
const (
	incomingTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	incomingSpanID  = "00f067aa0ba902b7"
	incomingParent  = "00-" + incomingTraceID + "-" + incomingSpanID + "-01"
	incomingState   = "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"
)

// tracedFixture is a fixture whose handler records its spans in memory.
func tracedFixture(t *testing.T, v relay.Verifier, opts ...relay.Option) (*fixture, *tracetest.SpanRecorder) {
	t.Helper()
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr))
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
	return newFixture(t, v, append(opts, relay.WithTracerProvider(tp))...), sr
}

// packageSpans waits for the server span of the one request sent (it ends
// just after the answer is written) and returns the ended spans by name.
func packageSpans(t *testing.T, sr *tracetest.SpanRecorder) map[string]sdktrace.ReadOnlySpan {
	t.Helper()
	testkit.Eventually(t, 10*time.Second, "the server span ends", func() bool {
		for _, s := range sr.Ended() {
			if s.SpanKind() == trace.SpanKindServer {
				return true
			}
		}
		return false
	})
	byName := map[string]sdktrace.ReadOnlySpan{}
	for _, s := range sr.Ended() {
		if _, dup := byName[s.Name()]; dup {
			t.Fatalf("two spans named %q", s.Name())
		}
		byName[s.Name()] = s
	}
	return byName
}

func attrsOf(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	m := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		m[kv.Key] = kv.Value
	}
	return m
}

// checkAttrs compares the attributes named in want (a string, int or bool
// each) and checks that the keys in absent are not set.
func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]any, absent ...string) {
	t.Helper()
	got := attrsOf(s)
	for k, w := range want {
		v, ok := got[attribute.Key(k)]
		if !ok {
			t.Errorf("span %q has no attribute %s (has %v)", s.Name(), k, s.Attributes())
			continue
		}
		if fmt.Sprint(v.AsInterface()) != fmt.Sprint(w) {
			t.Errorf("span %q: %s = %v, want %v", s.Name(), k, v.AsInterface(), w)
		}
	}
	for _, k := range absent {
		if v, ok := got[attribute.Key(k)]; ok {
			t.Errorf("span %q: %s = %v, want it unset", s.Name(), k, v.AsInterface())
		}
	}
}

// traceparentOf is the W3C traceparent of a sampled span context.
func traceparentOf(sc trace.SpanContext) string {
	return "00-" + sc.TraceID().String() + "-" + sc.SpanID().String() + "-01"
}

// logLines decodes JSON log lines.
func logLines(t *testing.T, logs string) []map[string]any {
	t.Helper()
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("log line %q: %v", l, err)
		}
		lines = append(lines, m)
	}
	return lines
}

func TestTracesASignedPackage(t *testing.T) {
	emu, v := realVerifier(t)
	var logs testkit.LogBuffer
	f, sr := tracedFixture(t, v, relay.WithLogger(zerolog.New(&logs)))
	body := pkg(event("t1", "ORDER.FILLED"), event("t2", "USER.CREATED"), `{"type":"ORDER.FILLED","object":{}}`)
	req := signedRequest(t, emu, f.http.URL+webhookPath, body)
	req.Header.Set("User-Agent", "upvest-webhooks/1")
	r := send(t, req)
	if r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}

	spans := packageSpans(t, sr)
	server, verifySpan, publish := spans["POST "+webhookPath], spans[relay.SpanVerify], spans[relay.SpanPublish]
	if server == nil || verifySpan == nil || publish == nil || len(spans) != 3 {
		t.Fatalf("spans = %v, want the server span, %q and %q", keys(spans), relay.SpanVerify, relay.SpanPublish)
	}
	if server.Parent().IsValid() {
		t.Errorf("server span has parent %v, want a root span (no traceparent came in)", server.Parent())
	}
	for _, s := range []sdktrace.ReadOnlySpan{verifySpan, publish} {
		if s.Parent().SpanID() != server.SpanContext().SpanID() || s.SpanContext().TraceID() != server.SpanContext().TraceID() {
			t.Errorf("span %q is not a child of the server span", s.Name())
		}
		if s.Status().Code != codes.Unset {
			t.Errorf("span %q status = %v, want unset", s.Name(), s.Status())
		}
	}
	if server.SpanKind() != trace.SpanKindServer || publish.SpanKind() != trace.SpanKindProducer || verifySpan.SpanKind() != trace.SpanKindInternal {
		t.Errorf("kinds = %v, %v, %v; want server, producer, internal", server.SpanKind(), publish.SpanKind(), verifySpan.SpanKind())
	}
	if got := server.InstrumentationScope().Name; got != relay.TracerName {
		t.Errorf("scope = %q, want %q", got, relay.TracerName)
	}
	checkAttrs(t, server, map[string]any{
		"http.request.method":       "POST",
		"http.route":                webhookPath,
		"url.path":                  webhookPath,
		"url.scheme":                "http",
		"http.response.status_code": 200,
		"http.request.body.size":    len(body),
		"network.peer.address":      "127.0.0.1",
		"client.address":            "127.0.0.1",
		"user_agent.original":       "upvest-webhooks/1",
		"relay.request_id":          r.header.Get(relay.RequestIDHeader),
		"relay.events":              3,
		"relay.published":           2,
		"relay.deadlettered":        1,
		"relay.duplicates":          0,
	}, "error.type")
	checkAttrs(t, publish, map[string]any{
		"messaging.system":              "nats",
		"messaging.operation.type":      "send",
		"messaging.operation.name":      "publish",
		"messaging.batch.message_count": 3,
	}, "messaging.destination.name", "messaging.message.id")

	// Every message, the dead letter included, carries the publish span's
	// trace context; there is no trace state to carry.
	msgs := f.stored()
	if len(msgs) != 3 {
		t.Fatalf("stored %d messages, want 3", len(msgs))
	}
	want := traceparentOf(publish.SpanContext())
	for _, m := range msgs {
		if got := m.Header.Get(relay.HeaderTraceParent); got != want {
			t.Errorf("message %s %s = %q, want %q", m.Subject, relay.HeaderTraceParent, got, want)
		}
		if vs, ok := m.Header[relay.HeaderTraceState]; ok {
			t.Errorf("message %s has %s %q, want none", m.Subject, relay.HeaderTraceState, vs)
		}
	}

	// The package's log line names the trace.
	lines := logLines(t, logs.String())
	if len(lines) != 1 || lines[0][relay.LogTraceID] != server.SpanContext().TraceID().String() {
		t.Errorf("log lines = %v, want one with %s %s", lines, relay.LogTraceID, server.SpanContext().TraceID())
	}
}

func keys(m map[string]sdktrace.ReadOnlySpan) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	return ks
}

func TestIncomingTraceContextIsContinued(t *testing.T) {
	var logs testkit.LogBuffer
	f, sr := tracedFixture(t, acceptAll, relay.WithLogger(zerolog.New(&logs)))
	req, err := http.NewRequest(http.MethodPost, f.http.URL+webhookPath, strings.NewReader(string(pkg(event("c1", "ORDER.FILLED")))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", incomingParent)
	req.Header.Set("tracestate", incomingState)
	if r := send(t, req); r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}

	spans := packageSpans(t, sr)
	server, publish := spans["POST "+webhookPath], spans[relay.SpanPublish+" upvest.order.filled"]
	if server == nil || publish == nil {
		t.Fatalf("spans = %v, want the server span and %q", keys(spans), relay.SpanPublish+" upvest.order.filled")
	}
	if got := server.Parent(); got.TraceID().String() != incomingTraceID || got.SpanID().String() != incomingSpanID || !got.IsRemote() {
		t.Errorf("server span parent = %v, want the incoming remote span %s", got, incomingSpanID)
	}
	checkAttrs(t, publish, map[string]any{
		"messaging.destination.name": "upvest.order.filled",
		"messaging.message.id":       "c1",
	}, "messaging.batch.message_count")

	msgs := f.stored()
	if len(msgs) != 1 {
		t.Fatalf("stored %d messages, want 1", len(msgs))
	}
	h := msgs[0].Header
	if got, want := h.Get(relay.HeaderTraceParent), "00-"+incomingTraceID+"-"+publish.SpanContext().SpanID().String()+"-01"; got != want {
		t.Errorf("%s = %q, want %q (the incoming trace, the publish span)", relay.HeaderTraceParent, got, want)
	}
	if got := h.Get(relay.HeaderTraceState); got != incomingState {
		t.Errorf("%s = %q, want the incoming %q", relay.HeaderTraceState, got, incomingState)
	}
	if lines := logLines(t, logs.String()); lines[0][relay.LogTraceID] != incomingTraceID {
		t.Errorf("log line %v, want %s %s", lines[0], relay.LogTraceID, incomingTraceID)
	}
}

func TestUnsampledTraceIsStillPropagated(t *testing.T) {
	sr := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(sr), sdktrace.WithSampler(sdktrace.NeverSample()))
	f := newFixture(t, acceptAll, relay.WithTracerProvider(tp))
	if r := f.post(pkg(event("u1", "ORDER.FILLED"))); r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}
	got := f.stored()[0].Header.Get(relay.HeaderTraceParent)
	if !strings.HasPrefix(got, "00-") || !strings.HasSuffix(got, "-00") || len(got) != 55 {
		t.Errorf("%s = %q, want a traceparent flagged not sampled", relay.HeaderTraceParent, got)
	}
	if n := len(sr.Ended()); n != 0 {
		t.Errorf("recorded %d spans, want none: the sampler said no", n)
	}
}

func TestRejectedRequestsAreTraced(t *testing.T) {
	tests := []struct {
		name       string
		verifier   relay.Verifier
		method     string
		status     int
		reason     string
		spans      []string
		failedSpan string
		attrs      map[string]any
	}{
		{"bad signature", verifierFunc(func(context.Context, *http.Request, []byte) error { return verify.ErrBadSignature }),
			http.MethodPost, http.StatusUnauthorized, "bad_signature", []string{"POST " + webhookPath, relay.SpanVerify}, relay.SpanVerify, nil},
		{"keys unavailable", verifierFunc(func(context.Context, *http.Request, []byte) error { return verify.ErrKeysUnavailable }),
			http.MethodPost, http.StatusServiceUnavailable, "keys_unavailable", []string{"POST " + webhookPath, relay.SpanVerify}, relay.SpanVerify, nil},
		{"wrong method", acceptAll, http.MethodGet, http.StatusMethodNotAllowed, "method_not_allowed", []string{"GET " + webhookPath}, "",
			map[string]any{"http.request.method": "GET"}},
		{"unknown method", acceptAll, "PURGE", http.StatusMethodNotAllowed, "method_not_allowed", []string{"HTTP " + webhookPath}, "",
			map[string]any{"http.request.method": "_OTHER", "http.request.method_original": "PURGE"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, sr := tracedFixture(t, tt.verifier)
			if r := f.do(tt.method, webhookPath, strings.NewReader(string(pkg(event("r1", "ORDER.FILLED"))))); r.status != tt.status {
				t.Fatalf("status = %d (%s), want %d", r.status, r.body, tt.status)
			}
			spans := packageSpans(t, sr)
			if len(spans) != len(tt.spans) {
				t.Errorf("spans = %v, want %v", keys(spans), tt.spans)
			}
			server := spans[tt.spans[0]]
			if server == nil {
				t.Fatalf("spans = %v, want %v", keys(spans), tt.spans)
			}
			want := map[string]any{"http.response.status_code": tt.status, "error.type": tt.reason}
			for k, v := range tt.attrs {
				want[k] = v
			}
			checkAttrs(t, server, want, "relay.events")
			wantServer := codes.Unset // a 4xx is the client's error
			if tt.status >= 500 {
				wantServer = codes.Error
			}
			if got := server.Status(); got.Code != wantServer || (wantServer == codes.Error && got.Description != tt.reason) {
				t.Errorf("server span status = %v, want %v %s", got, wantServer, tt.reason)
			}
			if tt.failedSpan != "" {
				s := spans[tt.failedSpan]
				if s == nil || s.Status().Code != codes.Error || s.Status().Description != tt.reason {
					t.Errorf("span %q = %v, want status Error %q", tt.failedSpan, s, tt.reason)
				}
			}
			if n := len(f.stored()); n != 0 {
				t.Errorf("stored %d messages, want none", n)
			}
		})
	}
}

func TestPublishFailureIsTraced(t *testing.T) {
	f, sr := tracedFixture(t, acceptAll, relay.WithAckTimeout(500*time.Millisecond))
	brokertest.Down(t, f.srv)
	testkit.Eventually(t, 10*time.Second, "client notices the outage", func() bool { return !f.nc.IsConnected() })
	if r := f.post(pkg(event("p1", "ORDER.FILLED"), event("p2", "ORDER.FILLED"))); r.status != http.StatusServiceUnavailable {
		t.Fatalf("status = %d (%s), want 503", r.status, r.body)
	}
	spans := packageSpans(t, sr)
	server, publish := spans["POST "+webhookPath], spans[relay.SpanPublish+" upvest.order.filled"]
	if server == nil || publish == nil {
		t.Fatalf("spans = %v, want the server and publish spans", keys(spans))
	}
	for _, s := range []sdktrace.ReadOnlySpan{server, publish} {
		if s.Status().Code != codes.Error || s.Status().Description != "publish_failed" {
			t.Errorf("span %q status = %v, want Error publish_failed", s.Name(), s.Status())
		}
	}
	checkAttrs(t, publish, map[string]any{"error.type": "publish_failed", "messaging.batch.message_count": 2})
	if ev := publish.Events(); len(ev) != 1 || ev[0].Name != "exception" {
		t.Errorf("publish span events = %v, want the error recorded", ev)
	}
}

// TestCloudEventsConsumerContinuesTheTrace reads the stream with the
// CloudEvents Go SDK, as a consumer would: every event, dead letters
// included, has the distributed-tracing extension, and a span started from
// it belongs to the package's trace.
func TestCloudEventsConsumerContinuesTheTrace(t *testing.T) {
	f, sr := tracedFixture(t, acceptAll)
	req, err := http.NewRequest(http.MethodPost, f.http.URL+webhookPath,
		strings.NewReader(string(pkg(event("ce1", "ORDER.FILLED"), event("ce2", "USER.CREATED"), `{"id":"ce3"}`))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", incomingParent)
	req.Header.Set("tracestate", incomingState)
	if r := send(t, req); r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}
	publish := packageSpans(t, sr)[relay.SpanPublish]
	if publish == nil {
		t.Fatal("no publish span")
	}

	consumer, err := cenats.NewConsumerFromConn(f.nc, streamName, "upvest.>", nil, []nats.SubOpt{nats.OrderedConsumer()})
	if err != nil {
		t.Fatalf("NewConsumerFromConn: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	opened := make(chan error, 1)
	go func() { opened <- consumer.OpenInbound(ctx) }()
	defer func() {
		cancel()
		if err := <-opened; err != nil {
			t.Errorf("OpenInbound: %v", err)
		}
	}()
	consumerTracer := sdktrace.NewTracerProvider().Tracer("consumer")
	for range 3 {
		msg, err := consumer.Receive(ctx)
		if err != nil {
			t.Fatalf("Receive: %v", err)
		}
		e, err := binding.ToEvent(ctx, msg)
		if err != nil {
			t.Fatalf("ToEvent: %v", err)
		}
		if err := msg.Finish(nil); err != nil {
			t.Errorf("Finish: %v", err)
		}
		dt, ok := extensions.GetDistributedTracingExtension(*e)
		if !ok {
			t.Errorf("event %s (%s) has no traceparent extension: %v", e.ID(), e.Type(), e.Extensions())
			continue
		}
		if dt.TraceParent != traceparentOf(publish.SpanContext()) || dt.TraceState != incomingState {
			t.Errorf("event %s: traceparent %q, tracestate %q; want %q, %q", e.ID(), dt.TraceParent, dt.TraceState,
				traceparentOf(publish.SpanContext()), incomingState)
		}
		cctx := propagation.TraceContext{}.Extract(ctx, propagation.MapCarrier{"traceparent": dt.TraceParent, "tracestate": dt.TraceState})
		_, span := consumerTracer.Start(cctx, "process", trace.WithSpanKind(trace.SpanKindConsumer))
		if span.SpanContext().TraceID().String() != incomingTraceID {
			t.Errorf("consumer span trace = %s, want %s", span.SpanContext().TraceID(), incomingTraceID)
		}
		span.End()
	}
}

func TestTracingOffAddsNothing(t *testing.T) {
	for _, c := range []struct {
		name string
		opts []relay.Option
	}{
		{"no option", nil},
		{"nil provider", []relay.Option{relay.WithTracerProvider(nil)}},
		{"noop provider", []relay.Option{relay.WithTracerProvider(noop.NewTracerProvider())}},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs testkit.LogBuffer
			f := newFixture(t, acceptAll, append(c.opts, relay.WithLogger(zerolog.New(&logs)))...)
			req, err := http.NewRequest(http.MethodPost, f.http.URL+webhookPath,
				strings.NewReader(string(pkg(event("o1", "ORDER.FILLED"), `{"id":"o2"}`))))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("traceparent", incomingParent)
			req.Header.Set("tracestate", incomingState)
			if r := send(t, req); r.status != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", r.status, r.body)
			}
			noTraceHeaders(t, f.stored())
			if strings.Contains(logs.String(), relay.LogTraceID) {
				t.Errorf("logs %q carry a trace id with tracing off", logs.String())
			}
		})
	}
}

func noTraceHeaders(t *testing.T, msgs []*jetstream.RawStreamMsg) {
	t.Helper()
	if len(msgs) == 0 {
		t.Fatal("no message stored")
	}
	for _, m := range msgs {
		for _, k := range []string{relay.HeaderTraceParent, relay.HeaderTraceState} {
			if v, ok := m.Header[k]; ok {
				t.Errorf("message %s has %s %q with tracing off", m.Subject, k, v)
			}
		}
	}
}

// TestTraceReachesAnOTLPReceiver runs the handler with the provider the
// environment configures, exporting over HTTP to a real OTLP receiver.
func TestTraceReachesAnOTLPReceiver(t *testing.T) {
	rcv := tracingtest.NewReceiver(t)
	env := func(name string) (string, bool) {
		v, ok := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL}[name]
		return v, ok
	}
	tp, shutdown, err := tracing.New(context.Background(), env, "v9.9.9")
	if err != nil {
		t.Fatalf("tracing.New: %v", err)
	}
	emu, v := realVerifier(t)
	f := newFixture(t, v, relay.WithTracerProvider(tp))
	r := send(t, signedRequest(t, emu, f.http.URL+webhookPath, pkg(event("x1", "ORDER.FILLED"), event("x2", "POSITION.UPDATED"))))
	if r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}
	f.http.Close() // waits for the handler, and so for its server span to end
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	byName := map[string]tracingtest.Span{}
	for _, s := range rcv.Spans() {
		byName[s.Name] = s
	}
	server, verifySpan, publish := byName["POST "+webhookPath], byName[relay.SpanVerify], byName[relay.SpanPublish]
	if len(byName) != 3 || server.SpanID == "" || verifySpan.SpanID == "" || publish.SpanID == "" {
		t.Fatalf("received spans %v, want the server, verify and publish spans", byName)
	}
	if server.Kind != tracepb.Span_SPAN_KIND_SERVER || publish.Kind != tracepb.Span_SPAN_KIND_PRODUCER {
		t.Errorf("kinds = %v, %v; want server, producer", server.Kind, publish.Kind)
	}
	if verifySpan.ParentSpanID != server.SpanID || publish.ParentSpanID != server.SpanID ||
		verifySpan.TraceID != server.TraceID || publish.TraceID != server.TraceID {
		t.Errorf("spans %+v: want verify and publish children of the server span", byName)
	}
	if server.Resource["service.name"] != tracing.DefaultServiceName || server.Resource["service.version"] != "v9.9.9" {
		t.Errorf("resource = %v, want service %s v9.9.9", server.Resource, tracing.DefaultServiceName)
	}
	if server.Scope != relay.TracerName || publish.Attributes["messaging.system"] != "nats" ||
		publish.Attributes["messaging.batch.message_count"] != int64(2) || server.Attributes["http.response.status_code"] != int64(200) {
		t.Errorf("server %+v, publish %+v: want the relay's scope and attributes", server, publish)
	}
	want := "00-" + publish.TraceID + "-" + publish.SpanID + "-01"
	msgs := f.stored()
	if len(msgs) != 2 {
		t.Fatalf("stored %d messages, want 2", len(msgs))
	}
	for _, m := range msgs {
		if got := m.Header.Get(relay.HeaderTraceParent); got != want {
			t.Errorf("message %s %s = %q, want %q (the exported publish span)", m.Subject, relay.HeaderTraceParent, got, want)
		}
	}
}

// TestTracingOffByEnvironmentExportsNothing: with the environment turning
// tracing off, even with an endpoint set, the receiver gets nothing (the
// shutdown would have flushed it) and the messages carry no trace headers.
func TestTracingOffByEnvironmentExportsNothing(t *testing.T) {
	rcv := tracingtest.NewReceiver(t)
	env := func(name string) (string, bool) {
		v, ok := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": rcv.URL, "OTEL_SDK_DISABLED": "true"}[name]
		return v, ok
	}
	tp, shutdown, err := tracing.New(context.Background(), env, "v1")
	if err != nil {
		t.Fatalf("tracing.New: %v", err)
	}
	f := newFixture(t, acceptAll, relay.WithTracerProvider(tp))
	req, err := http.NewRequest(http.MethodPost, f.http.URL+webhookPath, strings.NewReader(string(pkg(event("n1", "ORDER.FILLED")))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("traceparent", incomingParent)
	if r := send(t, req); r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}
	f.http.Close()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if reqs := rcv.Requests(); len(reqs) != 0 {
		t.Errorf("receiver got %d export requests, want none", len(reqs))
	}
	noTraceHeaders(t, f.stored())
}

// BenchmarkTracing sends packages of 10 events through the whole handler
// into a real embedded JetStream: without WithTracerProvider (the floor),
// with the noop provider that tracing.New returns when tracing is off
// (which must cost nothing: the same allocs/op, ns/op within noise), and
// with an SDK provider that samples every package and drops the batches
// (the cost of tracing on, export excluded).
func BenchmarkTracing(b *testing.B) {
	const events = 10
	for _, c := range []struct {
		name string
		opts func(b *testing.B) []relay.Option
	}{
		{"option=none", func(*testing.B) []relay.Option { return nil }},
		{"option=noop", func(*testing.B) []relay.Option {
			return []relay.Option{relay.WithTracerProvider(noop.NewTracerProvider())}
		}},
		{"option=sdk", func(b *testing.B) []relay.Option {
			tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(tracetest.NewNoopExporter()))
			b.Cleanup(func() { _ = tp.Shutdown(context.Background()) })
			return []relay.Option{relay.WithTracerProvider(tp)}
		}},
	} {
		b.Run(c.name, func(b *testing.B) {
			f := newFixture(b, acceptAll, c.opts(b)...)
			run := 0
			b.ReportAllocs()
			for b.Loop() {
				run++
				rec := postRecorder(f.handler, relay.BenchPackage(events, run))
				if rec.Code != http.StatusOK {
					b.Fatalf("status = %d (%s)", rec.Code, rec.Body)
				}
			}
			b.ReportMetric(float64(b.N*events)/b.Elapsed().Seconds(), "events/s")
		})
	}
}
