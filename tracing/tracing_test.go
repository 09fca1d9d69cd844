package tracing_test

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"

	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/tracing"
	"github.com/upvest-relay/upvest-relay/tracing/tracingtest"
)

// env is a Lookup over a map.
func env(kv ...string) tracing.Lookup {
	m := map[string]string{}
	for i := 0; i < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return func(name string) (string, bool) {
		v, ok := m[name]
		return v, ok
	}
}

func TestOffUnlessAnExporterIsEnabled(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		env  tracing.Lookup
	}{
		{"nil lookup", nil},
		{"nothing set", env()},
		{"only a service name", env("OTEL_SERVICE_NAME", "relay-a")},
		{"endpoint set but empty", env("OTEL_EXPORTER_OTLP_ENDPOINT", "")},
		{"exporter none beats an endpoint", env("OTEL_TRACES_EXPORTER", "none", "OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1")},
		{"sdk disabled beats otlp", env("OTEL_SDK_DISABLED", "true", "OTEL_TRACES_EXPORTER", "otlp")},
		{"sdk disabled beats a traces endpoint", env("OTEL_SDK_DISABLED", "TRUE", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://127.0.0.1:1")},
		{"sdk disabled beats an unsupported exporter", env("OTEL_SDK_DISABLED", "true", "OTEL_TRACES_EXPORTER", "zipkin")},
		{"sdk not disabled, nothing enabled", env("OTEL_SDK_DISABLED", "false")},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			tp, shutdown, err := tracing.New(context.Background(), c.env, "v1")
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			if _, ok := tp.(noop.TracerProvider); !ok {
				t.Errorf("provider is %T, want noop.TracerProvider", tp)
			}
			if err := shutdown(context.Background()); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
	}
}

func TestRefusesWhatItCannotHonour(t *testing.T) {
	t.Parallel()
	endpoint := []string{"OTEL_EXPORTER_OTLP_ENDPOINT", "https://127.0.0.1:4318"}
	missing := filepath.Join(t.TempDir(), "missing.pem")
	notPEM := filepath.Join(t.TempDir(), "not.pem")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		env  []string
		kind error
		want string
	}{
		{[]string{"OTEL_TRACES_EXPORTER", "zipkin"}, tracing.ErrUnsupported,
			`tracing: OTEL_TRACES_EXPORTER: "zipkin" is not supported: only otlp (OTLP over HTTP) or none`},
		{[]string{"OTEL_TRACES_EXPORTER", "otlp,console"}, tracing.ErrUnsupported,
			`tracing: OTEL_TRACES_EXPORTER: "otlp,console" is not supported: only otlp (OTLP over HTTP) or none`},
		{[]string{"OTEL_SDK_DISABLED", "yes"}, tracing.ErrInvalid,
			`tracing: OTEL_SDK_DISABLED: must be true or false, got "yes"`},
		{append([]string{"OTEL_EXPORTER_OTLP_PROTOCOL", "grpc"}, endpoint...), tracing.ErrUnsupported,
			`tracing: OTEL_EXPORTER_OTLP_PROTOCOL: grpc is not supported: only http/protobuf`},
		{[]string{"OTEL_TRACES_EXPORTER", "otlp", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "http/json"}, tracing.ErrUnsupported,
			`tracing: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: http/json is not supported: only http/protobuf`},
		{append([]string{"OTEL_EXPORTER_OTLP_PROTOCOL", "carrier-pigeon"}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_PROTOCOL: must be http/protobuf, got "carrier-pigeon"`},
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"}, tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_ENDPOINT: must be an http:// or https:// URL with a host, got "collector:4318"`},
		{[]string{"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "ftp://user:hunter2@collector/"}, tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: must be an http:// or https:// URL with a host, got "ftp://xxxxx@collector/"`},
		{append([]string{"OTEL_EXPORTER_OTLP_HEADERS", "api-key=ok,hunter2"}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_HEADERS: entry 2 is not key=value`},
		{append([]string{"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "api-key=%zzhunter2"}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_TRACES_HEADERS: the value of "api-key" is not validly percent-encoded`},
		{append([]string{"OTEL_EXPORTER_OTLP_TIMEOUT", "10s"}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_TIMEOUT: must be a positive number of milliseconds, got "10s"`},
		{append([]string{"OTEL_EXPORTER_OTLP_COMPRESSION", "zstd"}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_COMPRESSION: must be gzip or none, got "zstd"`},
		{append([]string{"OTEL_EXPORTER_OTLP_CERTIFICATE", missing}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_CERTIFICATE: open ` + missing + `: no such file or directory`},
		{append([]string{"OTEL_EXPORTER_OTLP_CERTIFICATE", notPEM}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_CERTIFICATE: ` + notPEM + ` holds no PEM certificate`},
		{[]string{"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", "OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE", notPEM}, tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE: is set, but the endpoint is not https://`},
		{append([]string{"OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE", notPEM, "OTEL_EXPORTER_OTLP_CLIENT_KEY", notPEM}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: with OTEL_EXPORTER_OTLP_CLIENT_KEY: tls: failed to find any PEM data in certificate input`},
		{append([]string{"OTEL_EXPORTER_OTLP_CLIENT_KEY", notPEM}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE: must be set together with OTEL_EXPORTER_OTLP_CLIENT_KEY`},
		{append([]string{"OTEL_TRACES_SAMPLER", "jaeger_remote"}, endpoint...), tracing.ErrUnsupported,
			`tracing: OTEL_TRACES_SAMPLER: "jaeger_remote" is not supported: only always_on, always_off, traceidratio and their parentbased_ forms`},
		{append([]string{"OTEL_TRACES_SAMPLER", "traceidratio", "OTEL_TRACES_SAMPLER_ARG", "1.5"}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_TRACES_SAMPLER_ARG: must be a ratio between 0 and 1, got "1.5"`},
		{append([]string{"OTEL_BSP_MAX_QUEUE_SIZE", "-1"}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_BSP_MAX_QUEUE_SIZE: must be a positive integer, got "-1"`},
		{append([]string{"OTEL_BSP_MAX_QUEUE_SIZE", "10", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "20"}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_BSP_MAX_EXPORT_BATCH_SIZE: 20 exceeds OTEL_BSP_MAX_QUEUE_SIZE (10)`},
		{append([]string{"OTEL_RESOURCE_ATTRIBUTES", "team=payments,=x"}, endpoint...), tracing.ErrInvalid,
			`tracing: OTEL_RESOURCE_ATTRIBUTES: entry 2 is not key=value`},
	} {
		t.Run(c.want, func(t *testing.T) {
			t.Parallel()
			tp, shutdown, err := tracing.New(context.Background(), env(c.env...), "v1")
			if err == nil {
				_ = shutdown(context.Background())
				t.Fatalf("New gave %T and no error, want %q", tp, c.want)
			}
			if err.Error() != c.want {
				t.Errorf("error = %q, want %q", err, c.want)
			}
			if !errors.Is(err, c.kind) {
				t.Errorf("error %q is not %v", err, c.kind)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error %q shows a secret", err)
			}
		})
	}
}

// emit records a root span with one child through tp and returns the
// root's trace id.
func emit(t *testing.T, tp trace.TracerProvider) trace.TraceID {
	t.Helper()
	ctx, root := tp.Tracer("test").Start(context.Background(), "root")
	_, child := tp.Tracer("test").Start(ctx, "child")
	child.End()
	root.End()
	if !root.SpanContext().IsValid() {
		t.Fatalf("root span context is not valid: tracing is off")
	}
	return root.SpanContext().TraceID()
}

func TestExportsToAnOTLPReceiverOverHTTP(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.NewReceiver(t)
	tp, shutdown, err := tracing.New(context.Background(), env(
		"OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL,
		"OTEL_EXPORTER_OTLP_HEADERS", "authorization=Bearer%20hunter2, x-tenant = acme",
		"OTEL_EXPORTER_OTLP_TIMEOUT", "3000",
	), "v1.2.3")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	traceID := emit(t, tp)
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}

	reqs := rcv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1 (the flush at shutdown)", len(reqs))
	}
	if reqs[0].Path != tracingtest.TracesPath {
		t.Errorf("path = %q, want %q", reqs[0].Path, tracingtest.TracesPath)
	}
	if got := reqs[0].Header.Get("Authorization"); got != "Bearer hunter2" {
		t.Errorf("Authorization = %q, want the percent-decoded header value", got)
	}
	if got := reqs[0].Header.Get("X-Tenant"); got != "acme" {
		t.Errorf("X-Tenant = %q, want acme", got)
	}
	spans := rcv.Spans()
	if len(spans) != 2 {
		t.Fatalf("received %d spans, want 2", len(spans))
	}
	child, root := spans[0], spans[1]
	if root.Name != "root" || child.Name != "child" {
		t.Fatalf("spans = %q, %q; want child, root", child.Name, root.Name)
	}
	if root.TraceID != traceID.String() || child.TraceID != root.TraceID {
		t.Errorf("trace ids = %s, %s; want both %s", root.TraceID, child.TraceID, traceID)
	}
	if child.ParentSpanID != root.SpanID || root.ParentSpanID != "" {
		t.Errorf("child's parent = %q, root = %q (root's parent %q)", child.ParentSpanID, root.SpanID, root.ParentSpanID)
	}
	for k, want := range map[string]any{
		"service.name":           tracing.DefaultServiceName,
		"service.version":        "v1.2.3",
		"telemetry.sdk.language": "go",
	} {
		if got := root.Resource[k]; got != want {
			t.Errorf("resource %s = %v, want %v", k, got, want)
		}
	}
	if root.Resource["host.name"] == nil {
		t.Errorf("resource has no host.name: %v", root.Resource)
	}
}

func TestTracesEndpointIsUsedAsIsAndOverridesTheGeneralOne(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.NewReceiver(t)
	tp, shutdown, err := tracing.New(context.Background(), env(
		"OTEL_TRACES_EXPORTER", "otlp",
		"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1",
		"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", rcv.URL+"/custom/traces",
		"OTEL_EXPORTER_OTLP_HEADERS", "x-general=1",
		"OTEL_EXPORTER_OTLP_TRACES_HEADERS", "x-traces=2",
		"OTEL_EXPORTER_OTLP_TRACES_COMPRESSION", "gzip",
		"OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf",
		"OTEL_RESOURCE_ATTRIBUTES", "service.name=from-attributes,deployment.environment.name=staging",
		"OTEL_SERVICE_NAME", "relay-eu",
	), "v2")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	emit(t, tp)
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	reqs := rcv.Requests()
	if len(reqs) != 1 {
		t.Fatalf("receiver got %d requests, want 1", len(reqs))
	}
	r := reqs[0]
	if r.Path != "/custom/traces" {
		t.Errorf("path = %q, want /custom/traces", r.Path)
	}
	if got := r.Header.Get("Content-Encoding"); got != "gzip" {
		t.Errorf("Content-Encoding = %q, want gzip", got)
	}
	if r.Header.Get("X-Traces") != "2" || r.Header.Get("X-General") != "" {
		t.Errorf("headers %v: want only the traces-specific X-Traces", r.Header)
	}
	spans := rcv.Spans()
	if len(spans) != 2 {
		t.Fatalf("received %d spans, want 2", len(spans))
	}
	res := spans[0].Resource
	if res["service.name"] != "relay-eu" || res["deployment.environment.name"] != "staging" || res["service.version"] != "v2" {
		t.Errorf("resource = %v, want service.name relay-eu (OTEL_SERVICE_NAME wins), the extra attribute and version v2", res)
	}
}

func TestServiceNameFromResourceAttributes(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.NewReceiver(t)
	tp, shutdown, err := tracing.New(context.Background(), env(
		"OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL,
		"OTEL_RESOURCE_ATTRIBUTES", "service.name=relay%20b",
	), "")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	emit(t, tp)
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	spans := rcv.Spans()
	if len(spans) == 0 {
		t.Fatal("no span received")
	}
	if got := spans[0].Resource["service.name"]; got != "relay b" {
		t.Errorf("service.name = %v, want %q", got, "relay b")
	}
	if v, ok := spans[0].Resource["service.version"]; ok {
		t.Errorf("service.version = %v, want none for an empty version", v)
	}
}

// errorLog collects what WithErrorHandler is given.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

func TestHTTPSWithTheConfiguredCA(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.NewTLSReceiver(t)
	for _, c := range []struct {
		name    string
		env     []string
		exports bool
	}{
		{"trusted", []string{"OTEL_EXPORTER_OTLP_CERTIFICATE", rcv.CAFile(t)}, true},
		{"not trusted", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log errorLog
			before := len(rcv.Spans())
			tp, shutdown, err := tracing.New(context.Background(),
				env(append([]string{"OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL}, c.env...)...), "v1",
				tracing.WithErrorHandler(log.add))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			emit(t, tp)
			if err := shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			got := len(rcv.Spans()) - before
			errs := log.all()
			switch {
			case c.exports && (got != 2 || len(errs) != 0):
				t.Errorf("received %d spans with errors %v, want 2 and none", got, errs)
			case !c.exports && (got != 0 || len(errs) != 1):
				t.Errorf("received %d spans with errors %v, want none and one error", got, errs)
			case !c.exports && !strings.Contains(errs[0].Error(), "certificate"):
				t.Errorf("error = %v, want a certificate error", errs[0])
			}
		})
	}
}

// clientCert writes a client certificate and its key as PEM files and
// returns their paths and a pool that trusts their issuer.
func clientCert(t *testing.T) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	ca := testkit.NewCA(t)
	certFile, keyFile = ca.IssueFiles(t, t.TempDir(), "relay", x509.ExtKeyUsageClientAuth)
	return certFile, keyFile, ca.Pool()
}

func TestMutualTLSWithAClientCertificate(t *testing.T) {
	t.Parallel()
	certFile, keyFile, pool := clientCert(t)
	rcv := tracingtest.NewMTLSReceiver(t, pool)
	for _, c := range []struct {
		name    string
		env     []string
		exports bool
	}{
		{"with the client certificate", []string{
			"OTEL_EXPORTER_OTLP_TRACES_CLIENT_CERTIFICATE", certFile, "OTEL_EXPORTER_OTLP_TRACES_CLIENT_KEY", keyFile}, true},
		{"without it", nil, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			var log errorLog
			before := len(rcv.Spans())
			tp, shutdown, err := tracing.New(context.Background(), env(append([]string{
				"OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL, "OTEL_EXPORTER_OTLP_CERTIFICATE", rcv.CAFile(t)}, c.env...)...), "v1",
				tracing.WithErrorHandler(log.add))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			emit(t, tp)
			if err := shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown: %v", err)
			}
			got, errs := len(rcv.Spans())-before, log.all()
			if c.exports && (got != 2 || len(errs) != 0) || !c.exports && (got != 0 || len(errs) != 1) {
				t.Errorf("received %d spans with errors %v, want exported=%v", got, errs, c.exports)
			}
		})
	}
}

func TestExportFailuresGoToTheErrorHandler(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.NewReceiver(t)
	rcv.Answer(400)
	var log errorLog
	tp, shutdown, err := tracing.New(context.Background(), env("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL), "v1",
		tracing.WithErrorHandler(log.add))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	emit(t, tp)
	if err := shutdown(context.Background()); err != nil {
		t.Errorf("shutdown: %v (export failures go to the handler, not here)", err)
	}
	errs := log.all()
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), "tracing: export of 2 spans failed") || !strings.Contains(errs[0].Error(), "400") {
		t.Errorf("handler got %v, want one error about the 400", errs)
	}
}

func TestShutdownIsBoundedByItsContext(t *testing.T) {
	t.Parallel()
	// A receiver that accepts connections and never answers.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			t.Cleanup(func() { c.Close() })
		}
	}()
	tp, shutdown, err := tracing.New(context.Background(), env(
		"OTEL_EXPORTER_OTLP_ENDPOINT", "http://"+l.Addr().String(),
		"OTEL_EXPORTER_OTLP_TIMEOUT", "60000",
	), "v1", tracing.WithErrorHandler(func(error) {}))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	emit(t, tp)
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("shutdown = %v, want it to give up with context.DeadlineExceeded", err)
	}
}

func TestSamplerFromTheEnvironment(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		sampler, arg string
		sampled      bool
	}{
		{"", "", true},
		{"always_on", "", true},
		{"always_off", "", false},
		{"traceidratio", "0", false},
		{"traceidratio", "1", true},
		{"parentbased_traceidratio", "0", false},
		{"parentbased_always_off", "", false},
	} {
		t.Run(c.sampler+"/"+c.arg, func(t *testing.T) {
			t.Parallel()
			tp, shutdown, err := tracing.New(context.Background(), env(
				"OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1",
				"OTEL_TRACES_SAMPLER", c.sampler, "OTEL_TRACES_SAMPLER_ARG", c.arg,
			), "v1", tracing.WithErrorHandler(func(error) {}))
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer func() { _ = shutdown(context.Background()) }()
			_, span := tp.Tracer("test").Start(context.Background(), "root")
			span.End()
			if got := span.SpanContext().IsSampled(); got != c.sampled {
				t.Errorf("sampled = %v, want %v", got, c.sampled)
			}
			if !span.SpanContext().IsValid() {
				t.Error("span context not valid: an unsampled span still has ids to propagate")
			}
		})
	}
}

func TestSpanKindsSurviveTheWire(t *testing.T) {
	t.Parallel()
	rcv := tracingtest.NewReceiver(t)
	tp, shutdown, err := tracing.New(context.Background(), env("OTEL_EXPORTER_OTLP_ENDPOINT", rcv.URL), "v1")
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	_, span := tp.Tracer("test").Start(context.Background(), "server", trace.WithSpanKind(trace.SpanKindServer))
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	spans := rcv.Spans()
	if len(spans) != 1 || spans[0].Kind != tracepb.Span_SPAN_KIND_SERVER || spans[0].Scope != "test" {
		t.Errorf("spans = %+v, want one server span of scope test", spans)
	}
}
