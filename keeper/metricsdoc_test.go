package keeper

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsAreDocumented: every metric the keeper exports is listed in
// docs/metrics.md.
func TestMetricsAreDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.reconciles.WithLabelValues("ok").Inc()
	m.actions.WithLabelValues("create").Inc()
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) != 4 {
		t.Errorf("gathered %d metric families, want 4", len(families))
	}
	for _, f := range families {
		if !strings.Contains(string(b), "`"+f.GetName()+"`") {
			t.Errorf("metric %s is not in docs/metrics.md", f.GetName())
		}
	}
}
