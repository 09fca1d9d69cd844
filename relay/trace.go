package relay

import (
	"context"
	"net"
	"net/http"
	"strconv"

	"github.com/nats-io/nats.go"
	"github.com/rs/zerolog"
	"github.com/rs/zerolog/hlog"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/propagation"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// The CloudEvents distributed-tracing extension in binary mode: every
// message of a traced package carries the W3C trace context of the
// package's publish span, so that consumers continue the trace.
const (
	HeaderTraceParent = "ce-traceparent"
	HeaderTraceState  = "ce-tracestate" // only when the trace has a state
)

// TracerName is the instrumentation scope of the handler's spans.
const TracerName = "github.com/upvest-relay/upvest-relay/relay"

// Names of the spans below a package's server span, and the log field that
// carries the trace id.
const (
	SpanVerify  = "verify"
	SpanPublish = "publish" // "publish <subject>" when every message has that subject
	LogTraceID  = "trace_id"
)

const (
	attrPrefix  = "relay."
	natsSystem  = "nats"
	publishOp   = "publish"
	traceparent = "traceparent"
	tracestate  = "tracestate"
)

// Attributes of the server span beyond the semantic conventions: the
// request id (X-Request-Id) and what the package amounted to.
var (
	attrRequestID    = attribute.Key(attrPrefix + "request_id")
	attrEvents       = attribute.Key(attrPrefix + "events")
	attrPublished    = attribute.Key(attrPrefix + "published")
	attrDuplicates   = attribute.Key(attrPrefix + "duplicates")
	attrDeadLettered = attribute.Key(attrPrefix + "deadlettered")
	attrNotPackage   = attribute.Key(attrPrefix + "deadletter_reason")
	messagingNATS    = semconv.MessagingSystemKey.String(natsSystem)
)

// WithTracerProvider traces every request with spans from tp (default: no
// tracing). Each request gets a server span, the child of an incoming W3C
// traceparent if there is one; a package also gets a "verify" child span
// (reading and verifying the body) and a "publish" producer span, whose
// trace context every message of the package carries as ce-traceparent
// (and ce-tracestate); the package's log lines carry the trace id as
// trace_id. A nil tp or a noop.TracerProvider leaves tracing off: no spans,
// no headers, no log field, no cost.
func WithTracerProvider(tp trace.TracerProvider) Option {
	return func(h *Handler) {
		h.tracer = nil
		if _, off := tp.(noop.TracerProvider); tp == nil || off {
			return
		}
		h.tracer = &tracer{tp.Tracer(TracerName, trace.WithSchemaURL(semconv.SchemaURL))}
	}
}

// tracer is the handler's tracer; nil when tracing is off.
type tracer struct{ trace.Tracer }

// packageTrace is the trace of one request. Its methods do nothing on a
// nil *packageTrace, which is what an untraced request has.
type packageTrace struct {
	tracer *tracer
	ctx    context.Context // carries the server span
	span   trace.Span
	// parent and state are the values of ce-traceparent and ce-tracestate,
	// computed once per package and shared by its messages' headers.
	parent, state []string
}

// startTrace starts the server span of r, under the trace context r
// carries, and adds its trace id to r's logger. It returns r with the span
// in its context.
func (h *Handler) startTrace(r *http.Request) (*http.Request, *packageTrace) {
	if h.tracer == nil {
		return r, nil
	}
	ctx := propagation.TraceContext{}.Extract(r.Context(), propagation.HeaderCarrier(r.Header))
	attrs := make([]attribute.KeyValue, 0, 12)
	name, attrs := httpMethod(r.Method, attrs)
	attrs = append(attrs, semconv.URLPath(r.URL.Path))
	if r.URL.Path == h.path {
		name += " " + h.path
		attrs = append(attrs, semconv.HTTPRoute(h.path))
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	attrs = append(attrs, semconv.URLScheme(scheme))
	if host, port, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		attrs = append(attrs, semconv.NetworkPeerAddress(host))
		if p, err := strconv.Atoi(port); err == nil {
			attrs = append(attrs, semconv.NetworkPeerPort(p))
		}
	}
	if addr, ok := h.source(r); ok {
		attrs = append(attrs, semconv.ClientAddress(addr.String()))
	}
	if ua := r.UserAgent(); ua != "" {
		attrs = append(attrs, semconv.UserAgentOriginal(ua))
	}
	if r.ContentLength >= 0 {
		attrs = append(attrs, semconv.HTTPRequestBodySize(int(r.ContentLength)))
	}
	if id, ok := hlog.IDFromRequest(r); ok {
		attrs = append(attrs, attrRequestID.String(id.String()))
	}
	ctx, span := h.tracer.Start(ctx, name, trace.WithSpanKind(trace.SpanKindServer), trace.WithAttributes(attrs...))
	if sc := span.SpanContext(); sc.IsValid() {
		id := sc.TraceID().String()
		hlog.FromRequest(r).UpdateContext(func(c zerolog.Context) zerolog.Context { return c.Str(LogTraceID, id) })
	}
	return r.WithContext(ctx), &packageTrace{tracer: h.tracer, ctx: ctx, span: span}
}

// httpMethod appends http.request.method to attrs and returns the span
// name for method m: the method, or "HTTP" and "_OTHER" (with the
// original) for methods outside RFC 9110 and PATCH, as the HTTP
// conventions have it.
func httpMethod(m string, attrs []attribute.KeyValue) (string, []attribute.KeyValue) {
	switch m {
	case http.MethodConnect, http.MethodDelete, http.MethodGet, http.MethodHead, http.MethodOptions,
		http.MethodPatch, http.MethodPost, http.MethodPut, http.MethodTrace:
		return m, append(attrs, semconv.HTTPRequestMethodKey.String(m))
	}
	return "HTTP", append(attrs, semconv.HTTPRequestMethodOther, semconv.HTTPRequestMethodOriginal(m))
}

// end ends the server span with the answer: its status, the reason of a
// non-2xx answer as error.type (span status Error for 5xx, as the HTTP
// conventions have it for servers), and what a stored package amounted to.
func (t *packageTrace) end(status int, reason string, out outcome) {
	if t == nil {
		return
	}
	t.span.SetAttributes(semconv.HTTPResponseStatusCode(status))
	switch {
	case status >= http.StatusInternalServerError:
		t.span.SetAttributes(semconv.ErrorTypeKey.String(reason))
		t.span.SetStatus(codes.Error, reason)
	case status >= http.StatusBadRequest:
		t.span.SetAttributes(semconv.ErrorTypeKey.String(reason))
	default:
		t.span.SetAttributes(attrEvents.Int(out.Events), attrPublished.Int(out.Published),
			attrDuplicates.Int(out.Duplicates), attrDeadLettered.Int(out.DeadLettered))
		if out.notPackage != "" {
			t.span.SetAttributes(attrNotPackage.String(out.notPackage))
		}
	}
	t.span.End()
}

// childSpan is a span below a package's server span; the zero value, which
// an untraced request gets, does nothing.
type childSpan struct {
	span trace.Span
	// record adds the error itself as an event; only for errors whose text
	// is safe to export.
	record bool
}

// verifying starts the span of reading and verifying the body.
func (t *packageTrace) verifying() childSpan {
	if t == nil {
		return childSpan{}
	}
	_, s := t.tracer.Start(t.ctx, SpanVerify)
	return childSpan{span: s}
}

// publishing starts the producer span of publishing p and puts its trace
// context on every message of p (addHeaders).
func (t *packageTrace) publishing(p *publication) childSpan {
	n := p.len()
	if t == nil || n == 0 {
		return childSpan{}
	}
	attrs := make([]attribute.KeyValue, 0, 5)
	attrs = append(attrs, messagingNATS, semconv.MessagingOperationTypeSend, semconv.MessagingOperationName(publishOp))
	name := SpanPublish
	if subject, ok := p.commonSubject(); ok {
		name += " " + subject
		attrs = append(attrs, semconv.MessagingDestinationName(subject))
	}
	if n == 1 {
		m, _ := p.msg(0)
		attrs = append(attrs, semconv.MessagingMessageID(m.Header.Get(HeaderMsgID)))
	} else {
		attrs = append(attrs, semconv.MessagingBatchMessageCount(n))
	}
	ctx, s := t.tracer.Start(t.ctx, name, trace.WithSpanKind(trace.SpanKindProducer), trace.WithAttributes(attrs...))
	var c traceCarrier
	propagation.TraceContext{}.Inject(ctx, &c)
	t.parent, t.state = c.parent, c.state
	p.traced(t)
	return childSpan{span: s, record: true}
}

// addHeaders puts the package's trace context on one message's headers:
// the CloudEvents distributed-tracing extension. It does nothing on an
// untraced package.
func (t *packageTrace) addHeaders(h nats.Header) {
	if t == nil || t.parent == nil {
		return
	}
	h[HeaderTraceParent] = t.parent
	if t.state != nil {
		h[HeaderTraceState] = t.state
	}
}

// end ends the span; an error sets its status to Error with the reason
// the answer gives for it (never a signature or a body).
func (s childSpan) end(err error) {
	if s.span == nil {
		return
	}
	if err != nil {
		reason := answer(err).reason
		s.span.SetAttributes(semconv.ErrorTypeKey.String(reason))
		if s.record {
			s.span.RecordError(err)
		}
		s.span.SetStatus(codes.Error, reason)
	}
	s.span.End()
}

// traceCarrier takes the W3C trace context headers as message header
// values.
type traceCarrier struct{ parent, state []string }

func (c *traceCarrier) Get(string) string { return "" }
func (c *traceCarrier) Keys() []string    { return nil }
func (c *traceCarrier) Set(key, value string) {
	switch key {
	case traceparent:
		c.parent = []string{value}
	case tracestate:
		c.state = []string{headerValue(value)}
	}
}
