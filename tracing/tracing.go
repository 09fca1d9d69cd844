package tracing

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// Lookup returns the value of the environment variable name and whether it
// is set; os.LookupEnv is one. A variable set to the empty string counts
// as unset, as the OpenTelemetry specification requires.
type Lookup func(name string) (string, bool)

// DefaultServiceName is service.name when OTEL_SERVICE_NAME (or
// service.name in OTEL_RESOURCE_ATTRIBUTES) does not say otherwise.
const DefaultServiceName = "upvest-relay"

// ShutdownTimeout bounds the flush of the shutdown function New returns,
// whatever its context allows.
const ShutdownTimeout = 5 * time.Second

// Errors of New, wrapped in an error that names the variable.
var (
	// ErrUnsupported: a setting the specification defines that this relay
	// does not implement (another exporter, OTLP over gRPC, ...).
	ErrUnsupported = errors.New("tracing: setting not supported")
	// ErrInvalid: a malformed value.
	ErrInvalid = errors.New("tracing: invalid setting")
)

// envError names the variable a setting came from.
type envError struct {
	name, msg string
	kind      error
}

func (e *envError) Error() string { return "tracing: " + e.name + ": " + e.msg }
func (e *envError) Unwrap() error { return e.kind }

func invalid(name, format string, args ...any) error {
	return &envError{name: name, msg: fmt.Sprintf(format, args...), kind: ErrInvalid}
}

func unsupported(name, format string, args ...any) error {
	return &envError{name: name, msg: fmt.Sprintf(format, args...), kind: ErrUnsupported}
}

// Option tunes New.
type Option func(*options)

type options struct {
	onError func(error)
}

// WithErrorHandler sends every failed export to f (default: OpenTelemetry's
// global error handler, which writes to the standard logger). f must not
// block for long: it runs on the export goroutine.
func WithErrorHandler(f func(error)) Option { return func(o *options) { o.onError = f } }

// New builds the tracer provider the environment asks for (see the package
// documentation) and the function that flushes and stops it, bounded by its
// context and by ShutdownTimeout. When tracing is off the provider is a
// noop.TracerProvider and the function does nothing. version becomes
// service.version. New starts no connection: an unreachable receiver shows
// only in export errors.
func New(ctx context.Context, env Lookup, version string, opts ...Option) (trace.TracerProvider, func(context.Context) error, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	e := environment(env)
	on, err := e.enabled()
	if err != nil || !on {
		return noop.NewTracerProvider(), func(context.Context) error { return nil }, err
	}
	exporterOpts, err := e.exporterOptions()
	if err != nil {
		return nil, nil, err
	}
	sampler, err := e.sampler()
	if err != nil {
		return nil, nil, err
	}
	batchOpts, err := e.batchOptions()
	if err != nil {
		return nil, nil, err
	}
	attrs, err := e.resourceAttributes(version)
	if err != nil {
		return nil, nil, err
	}
	res, err := resource.New(ctx,
		resource.WithSchemaURL(semconv.SchemaURL),
		resource.WithTelemetrySDK(),
		resource.WithHost(),
		resource.WithAttributes(attrs...),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: resource: %w", err)
	}
	exp, err := otlptracehttp.New(ctx, exporterOpts...)
	if err != nil {
		return nil, nil, fmt.Errorf("tracing: OTLP exporter: %w", err)
	}
	var spanExp sdktrace.SpanExporter = exp
	if o.onError != nil {
		spanExp = reportingExporter{SpanExporter: exp, report: o.onError}
	}
	tp := sdktrace.NewTracerProvider(
		sdktrace.WithResource(res),
		sdktrace.WithSampler(sampler),
		sdktrace.WithBatcher(spanExp, batchOpts...),
	)
	shutdown := func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, ShutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(ctx); err != nil {
			return fmt.Errorf("tracing: shutdown: %w", err)
		}
		return nil
	}
	return tp, shutdown, nil
}

// reportingExporter hands export errors to report instead of the global
// error handler the batch span processor would use.
type reportingExporter struct {
	sdktrace.SpanExporter
	report func(error)
}

func (r reportingExporter) ExportSpans(ctx context.Context, spans []sdktrace.ReadOnlySpan) error {
	if err := r.SpanExporter.ExportSpans(ctx, spans); err != nil {
		r.report(fmt.Errorf("tracing: export of %d spans failed: %w", len(spans), err))
	}
	return nil
}
