package tracing

import (
	"crypto/tls"
	"crypto/x509"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.43.0"
)

// Names of the variables read.
const (
	envSDKDisabled   = "OTEL_SDK_DISABLED"
	envExporter      = "OTEL_TRACES_EXPORTER"
	envServiceName   = "OTEL_SERVICE_NAME"
	envResourceAttrs = "OTEL_RESOURCE_ATTRIBUTES"
	envSampler       = "OTEL_TRACES_SAMPLER"
	envSamplerArg    = "OTEL_TRACES_SAMPLER_ARG"
	envBSPDelay      = "OTEL_BSP_SCHEDULE_DELAY"
	envBSPTimeout    = "OTEL_BSP_EXPORT_TIMEOUT"
	envBSPQueue      = "OTEL_BSP_MAX_QUEUE_SIZE"
	envBSPBatch      = "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"

	otlpPrefix  = "OTEL_EXPORTER_OTLP_"
	tracesInfix = "TRACES_"
)

// Defaults of the OTLP exporter, as the specification gives them.
const (
	defaultEndpoint = "http://localhost:4318/v1/traces"
	tracesPath      = "/v1/traces"
	defaultTimeout  = 10 * time.Second
)

// environment reads variables, empty meaning unset.
type environment Lookup

func (e environment) get(name string) string {
	if e == nil {
		return ""
	}
	v, _ := e(name)
	return strings.TrimSpace(v)
}

// otlp returns the traces-only form of OTEL_EXPORTER_OTLP_<key> when set,
// else the general one, and the name of the variable it came from.
func (e environment) otlp(key string) (value, name string) {
	name = otlpPrefix + tracesInfix + key
	if v := e.get(name); v != "" {
		return v, name
	}
	name = otlpPrefix + key
	return e.get(name), name
}

// enabled decides whether tracing is on.
func (e environment) enabled() (bool, error) {
	switch v := strings.ToLower(e.get(envSDKDisabled)); v {
	case "true":
		return false, nil
	case "", "false":
	default:
		return false, invalid(envSDKDisabled, "must be true or false, got %q", v)
	}
	switch v := e.get(envExporter); v {
	case "none":
		return false, nil
	case "otlp":
		return true, nil
	case "":
		return e.get(otlpPrefix+"ENDPOINT") != "" || e.get(otlpPrefix+tracesInfix+"ENDPOINT") != "", nil
	default:
		return false, unsupported(envExporter, "%q is not supported: only otlp (OTLP over HTTP) or none", v)
	}
}

// exporterOptions sets every option of the OTLP exporter from the
// environment, so that nothing of the process environment, which the
// exporter would read by itself, is left to apply.
func (e environment) exporterOptions() ([]otlptracehttp.Option, error) {
	endpoint, err := e.endpoint()
	if err != nil {
		return nil, err
	}
	opts := []otlptracehttp.Option{otlptracehttp.WithEndpointURL(endpoint)}

	switch v, name := e.otlp("PROTOCOL"); v {
	case "", "http/protobuf":
		opts = append(opts, otlptracehttp.WithEncoding(otlptracehttp.EncodingProtobuf))
	case "grpc", "http/json":
		return nil, unsupported(name, "%s is not supported: only http/protobuf", v)
	default:
		return nil, invalid(name, "must be http/protobuf, got %q", v)
	}

	headers := map[string]string{}
	if v, name := e.otlp("HEADERS"); v != "" {
		if headers, err = keyValues(name, v); err != nil {
			return nil, err
		}
	}
	opts = append(opts, otlptracehttp.WithHeaders(headers))

	timeout := defaultTimeout
	if v, name := e.otlp("TIMEOUT"); v != "" {
		if timeout, err = millis(name, v); err != nil {
			return nil, err
		}
	}
	opts = append(opts, otlptracehttp.WithTimeout(timeout))

	switch v, name := e.otlp("COMPRESSION"); v {
	case "", "none":
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.NoCompression))
	case "gzip":
		opts = append(opts, otlptracehttp.WithCompression(otlptracehttp.GzipCompression))
	default:
		return nil, invalid(name, "must be gzip or none, got %q", v)
	}

	tlsConf, err := e.tlsConfig(strings.HasPrefix(endpoint, "https://"))
	if err != nil {
		return nil, err
	}
	if tlsConf != nil {
		opts = append(opts, otlptracehttp.WithTLSClientConfig(tlsConf))
	}
	return opts, nil
}

// endpoint is the URL spans are sent to: the traces endpoint as is, or the
// general one with /v1/traces appended.
func (e environment) endpoint() (string, error) {
	name := otlpPrefix + tracesInfix + "ENDPOINT"
	raw := e.get(name)
	perSignal := raw != ""
	if !perSignal {
		name = otlpPrefix + "ENDPOINT"
		raw = e.get(name)
	}
	if raw == "" {
		return defaultEndpoint, nil
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return "", invalid(name, "must be an http:// or https:// URL with a host, got %q", redactURL(raw))
	}
	if !perSignal {
		u.Path = strings.TrimRight(u.Path, "/") + tracesPath
		u.RawPath = ""
	}
	return u.String(), nil
}

// redactURL drops the user information of a URL that may carry a secret.
func redactURL(raw string) string {
	if u, err := url.Parse(raw); err == nil && u.User != nil {
		u.User = url.User("xxxxx")
		return u.String()
	}
	if strings.Contains(raw, "@") {
		return "(a URL with user information)"
	}
	return raw
}

// tlsConfig builds the client TLS configuration from the certificate
// variables; without them the system roots are trusted. Over plain HTTP
// there is none, and the certificate variables are a mistake.
func (e environment) tlsConfig(https bool) (*tls.Config, error) {
	if !https {
		for _, key := range []string{"CERTIFICATE", "CLIENT_CERTIFICATE", "CLIENT_KEY"} {
			if v, name := e.otlp(key); v != "" {
				return nil, invalid(name, "is set, but the endpoint is not https://")
			}
		}
		return nil, nil
	}
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if path, name := e.otlp("CERTIFICATE"); path != "" {
		pem, err := os.ReadFile(path)
		if err != nil {
			return nil, invalid(name, "%v", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, invalid(name, "%s holds no PEM certificate", path)
		}
		conf.RootCAs = pool
	}
	certPath, certName := e.otlp("CLIENT_CERTIFICATE")
	keyPath, keyName := e.otlp("CLIENT_KEY")
	switch {
	case certPath == "" && keyPath == "":
	case certPath == "":
		return nil, invalid(certName, "must be set together with %s", keyName)
	case keyPath == "":
		return nil, invalid(keyName, "must be set together with %s", certName)
	default:
		pair, err := tls.LoadX509KeyPair(certPath, keyPath)
		if err != nil {
			return nil, invalid(certName, "with %s: %v", keyName, err)
		}
		conf.Certificates = []tls.Certificate{pair}
	}
	return conf, nil
}

// sampler is OTEL_TRACES_SAMPLER's sampler, parentbased_always_on by
// default.
func (e environment) sampler() (sdktrace.Sampler, error) {
	ratio := func() (sdktrace.Sampler, error) {
		v := e.get(envSamplerArg)
		if v == "" {
			return sdktrace.TraceIDRatioBased(1), nil
		}
		r, err := strconv.ParseFloat(v, 64)
		if err != nil || r < 0 || r > 1 {
			return nil, invalid(envSamplerArg, "must be a ratio between 0 and 1, got %q", v)
		}
		return sdktrace.TraceIDRatioBased(r), nil
	}
	switch v := strings.ToLower(e.get(envSampler)); v {
	case "", "parentbased_always_on":
		return sdktrace.ParentBased(sdktrace.AlwaysSample()), nil
	case "parentbased_always_off":
		return sdktrace.ParentBased(sdktrace.NeverSample()), nil
	case "parentbased_traceidratio":
		s, err := ratio()
		if err != nil {
			return nil, err
		}
		return sdktrace.ParentBased(s), nil
	case "always_on":
		return sdktrace.AlwaysSample(), nil
	case "always_off":
		return sdktrace.NeverSample(), nil
	case "traceidratio":
		return ratio()
	default:
		return nil, unsupported(envSampler, "%q is not supported: only always_on, always_off, traceidratio and their parentbased_ forms", v)
	}
}

// batchOptions are the batch span processor's settings: the SDK's
// defaults unless OTEL_BSP_* says otherwise.
func (e environment) batchOptions() ([]sdktrace.BatchSpanProcessorOption, error) {
	delay, timeout := sdktrace.DefaultScheduleDelay*time.Millisecond, sdktrace.DefaultExportTimeout*time.Millisecond
	queue, batch := sdktrace.DefaultMaxQueueSize, sdktrace.DefaultMaxExportBatchSize
	var err error
	if v := e.get(envBSPDelay); v != "" {
		if delay, err = millis(envBSPDelay, v); err != nil {
			return nil, err
		}
	}
	if v := e.get(envBSPTimeout); v != "" {
		if timeout, err = millis(envBSPTimeout, v); err != nil {
			return nil, err
		}
	}
	if v := e.get(envBSPQueue); v != "" {
		if queue, err = positive(envBSPQueue, v); err != nil {
			return nil, err
		}
	}
	if v := e.get(envBSPBatch); v != "" {
		if batch, err = positive(envBSPBatch, v); err != nil {
			return nil, err
		}
	}
	if batch > queue {
		return nil, invalid(envBSPBatch, "%d exceeds %s (%d)", batch, envBSPQueue, queue)
	}
	return []sdktrace.BatchSpanProcessorOption{
		sdktrace.WithBatchTimeout(delay),
		sdktrace.WithExportTimeout(timeout),
		sdktrace.WithMaxQueueSize(queue),
		sdktrace.WithMaxExportBatchSize(batch),
	}, nil
}

// resourceAttributes are the resource's own attributes: the defaults, then
// OTEL_RESOURCE_ATTRIBUTES, then OTEL_SERVICE_NAME; a later one wins.
func (e environment) resourceAttributes(version string) ([]attribute.KeyValue, error) {
	attrs := []attribute.KeyValue{semconv.ServiceName(DefaultServiceName)}
	if version != "" {
		attrs = append(attrs, semconv.ServiceVersion(version))
	}
	if v := e.get(envResourceAttrs); v != "" {
		kv, err := keyValues(envResourceAttrs, v)
		if err != nil {
			return nil, err
		}
		for k, v := range kv {
			attrs = append(attrs, attribute.String(k, v))
		}
	}
	if v := e.get(envServiceName); v != "" {
		attrs = append(attrs, semconv.ServiceName(v))
	}
	return attrs, nil
}

// keyValues parses the specification's key1=value1,key2=value2 lists,
// values percent-decoded. Errors say where, never what the value is.
func keyValues(name, s string) (map[string]string, error) {
	m := map[string]string{}
	for i, entry := range strings.Split(s, ",") {
		if strings.TrimSpace(entry) == "" {
			continue
		}
		k, v, ok := strings.Cut(entry, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, invalid(name, "entry %d is not key=value", i+1)
		}
		dec, err := url.PathUnescape(strings.TrimSpace(v))
		if err != nil {
			return nil, invalid(name, "the value of %q is not validly percent-encoded", k)
		}
		m[k] = dec
	}
	return m, nil
}

// millis parses a positive number of milliseconds.
func millis(name, v string) (time.Duration, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, invalid(name, "must be a positive number of milliseconds, got %q", v)
	}
	return time.Duration(n) * time.Millisecond, nil
}

func positive(name, v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		return 0, invalid(name, "must be a positive integer, got %q", v)
	}
	return n, nil
}
