package relay_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/relay"
)

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func readiness(t *testing.T, body string) relay.Readiness {
	t.Helper()
	var r relay.Readiness
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatalf("readyz body %q: %v", body, err)
	}
	return r
}

func TestAdminHealthAndReadiness(t *testing.T) {
	a := relay.NewAdmin(prometheus.NewRegistry(), relay.WithCheckTimeout(100*time.Millisecond))
	if code, _ := get(t, a, "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200", code)
	}
	if code, body := get(t, a, "/readyz"); code != http.StatusOK || !readiness(t, body).Ready {
		t.Errorf("/readyz with no checks = %d %s, want 200 ready", code, body)
	}

	keysLoaded := false
	a.AddCheck("nats", func(context.Context) error { return nil })
	a.AddCheck("keys", func(context.Context) error {
		if !keysLoaded {
			return errors.New("no verification keys yet")
		}
		return nil
	})
	a.AddDetail("keeper", func() any { return map[string]any{"leader": true} })

	code, body := get(t, a, "/readyz")
	r := readiness(t, body)
	if code != http.StatusServiceUnavailable || r.Ready {
		t.Errorf("/readyz with a failing check = %d ready=%v, want 503 not ready", code, r.Ready)
	}
	if got := r.Checks["keys"]; got.OK || got.Error != "no verification keys yet" {
		t.Errorf("keys check = %+v, want failed with its error", got)
	}
	if got := r.Checks["nats"]; !got.OK {
		t.Errorf("nats check = %+v, want ok", got)
	}
	if !strings.Contains(body, `"keeper":{"leader":true}`) {
		t.Errorf("/readyz body %s lacks the keeper detail", body)
	}

	keysLoaded = true
	if code, body := get(t, a, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz with all checks passing = %d %s, want 200", code, body)
	}

	// A check that hangs is cut off by the check timeout.
	a.AddCheck("slow", func(ctx context.Context) error {
		<-ctx.Done()
		return ctx.Err()
	})
	start := time.Now()
	code, body = get(t, a, "/readyz")
	if code != http.StatusServiceUnavailable || readiness(t, body).Checks["slow"].OK {
		t.Errorf("/readyz with a hanging check = %d %s, want 503 with slow failed", code, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("/readyz took %s with a 100ms check timeout", d)
	}

	if code, _ := get(t, a, "/nope"); code != http.StatusNotFound {
		t.Errorf("/nope = %d, want 404", code)
	}
}

func TestAdminWithBrokerChecksAndMetrics(t *testing.T) {
	f := newFixture(t, acceptAll)
	a := relay.NewAdmin(f.reg, relay.WithCheckTimeout(200*time.Millisecond))
	a.AddCheck("nats", broker.Connected(f.nc))
	a.AddCheck("stream", broker.StreamExists(f.js, streamName))

	if code, body := get(t, a, "/readyz"); code != http.StatusOK {
		t.Errorf("/readyz = %d %s, want 200", code, body)
	}
	if r := f.post(pkg(event("m1", "ORDER.FILLED"))); r.status != http.StatusOK {
		t.Fatalf("post: %d", r.status)
	}
	code, body := get(t, a, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics = %d, want 200", code)
	}
	for _, want := range []string{
		`relay_packages_total{result="ok"} 1`,
		`relay_events_published_total{family="order"} 1`,
		`relay_events_deduplicated_total 0`,
		`relay_events_deadlettered_total 0`,
		`relay_package_duration_seconds_count 1`,
		`relay_publish_duration_seconds_count 1`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}

	up := brokertest.Down(t, f.srv)
	testkit.Eventually(t, 10*time.Second, "client notices the outage", func() bool { return !f.nc.IsConnected() })
	code, body = get(t, a, "/readyz")
	r := readiness(t, body)
	// The stream was seen moments ago: its check rides out the outage
	// (broker.StreamGrace); the connection check is what fails.
	if code != http.StatusServiceUnavailable || r.Checks["nats"].OK || !r.Checks["stream"].OK {
		t.Errorf("/readyz with NATS down = %d %s, want 503 with nats failed and stream within its grace", code, body)
	}
	up()
	testkit.Eventually(t, 10*time.Second, "/readyz is 200 again", func() bool {
		code, _ := get(t, a, "/readyz")
		return code == http.StatusOK
	})
}
