// Package tracing builds the relay's OpenTelemetry tracer provider from the
// standard OTEL_* environment variables, read through a Lookup (os.LookupEnv
// in the process, a map in tests).
//
// Tracing is off unless the environment enables an exporter, and off means
// a noop.TracerProvider: nothing is recorded, exported or propagated, and
// the relay's handler, given one, runs exactly as without it. Unlike the
// OpenTelemetry SDK default, an unset OTEL_TRACES_EXPORTER does not mean
// "otlp to localhost": it enables tracing only together with an endpoint.
//
//	OTEL_SDK_DISABLED=true                       off, whatever else is set
//	OTEL_TRACES_EXPORTER=none                    off
//	OTEL_TRACES_EXPORTER=otlp                    on (default endpoint http://localhost:4318/v1/traces)
//	OTEL_TRACES_EXPORTER unset, and
//	  OTEL_EXPORTER_OTLP_ENDPOINT or
//	  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT set     on
//	nothing of the above                         off
//
// When on, spans go in batches to an OTLP receiver over HTTP (protobuf).
// The variables read,
// each also as OTEL_EXPORTER_OTLP_TRACES_* where the specification has a
// traces-only form, which then wins:
//
//	OTEL_EXPORTER_OTLP_ENDPOINT      base URL; /v1/traces is appended
//	OTEL_EXPORTER_OTLP_TRACES_ENDPOINT  full URL, used as is
//	OTEL_EXPORTER_OTLP_HEADERS       key=value,... (values percent-decoded)
//	OTEL_EXPORTER_OTLP_TIMEOUT       per export, milliseconds (default 10000)
//	OTEL_EXPORTER_OTLP_COMPRESSION   gzip or none
//	OTEL_EXPORTER_OTLP_PROTOCOL      http/protobuf (the default and only one)
//	OTEL_EXPORTER_OTLP_CERTIFICATE   PEM file of the CAs to trust (https)
//	OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY
//	                                 PEM files of a client certificate (mTLS)
//	OTEL_SERVICE_NAME                service.name (default "upvest-relay")
//	OTEL_RESOURCE_ATTRIBUTES         more resource attributes, key=value,...
//	OTEL_TRACES_SAMPLER, OTEL_TRACES_SAMPLER_ARG
//	                                 always_on, always_off, traceidratio and
//	                                 their parentbased_ forms (default
//	                                 parentbased_always_on)
//	OTEL_BSP_SCHEDULE_DELAY, OTEL_BSP_EXPORT_TIMEOUT (milliseconds),
//	OTEL_BSP_MAX_QUEUE_SIZE, OTEL_BSP_MAX_EXPORT_BATCH_SIZE
//	                                 the batch span processor
//
// The SDK itself reads the span limits (OTEL_SPAN_*_LIMIT and the like)
// from the process environment; nothing else is read but through the
// Lookup.
//
// The resource carries service.name, service.version (the version given to
// New), host.name and the SDK's telemetry.sdk.* attributes.
//
// A value the relay cannot honour is refused when New is called, with an
// error naming the variable that wraps ErrUnsupported (a valid setting this
// relay does not implement: OTEL_TRACES_EXPORTER=zipkin,
// OTEL_EXPORTER_OTLP_PROTOCOL=grpc) or ErrInvalid (a malformed value). Error
// texts never contain header values, which often hold credentials.
//
// Export failures are given to the function set with WithErrorHandler;
// spans are never retried past the exporter's own retries, and a full queue
// drops spans rather than slowing a request.
package tracing
