package relay

import (
	"os"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestMetricsAreDocumented: every metric the handler exports is listed in
// docs/metrics.md.
func TestMetricsAreDocumented(t *testing.T) {
	reg := prometheus.NewRegistry()
	m, err := newMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	m.packages.WithLabelValues(resultOK).Inc()
	m.published.WithLabelValues("order").Inc()
	m.rejections.WithLabelValues("bad_signature").Inc()
	checkDocumented(t, reg, "../docs/metrics.md")
}

func checkDocumented(t *testing.T, g prometheus.Gatherer, doc string) {
	t.Helper()
	b, err := os.ReadFile(doc)
	if err != nil {
		t.Fatal(err)
	}
	families, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if len(families) == 0 {
		t.Fatal("no metrics gathered")
	}
	for _, f := range families {
		if !strings.Contains(string(b), "`"+f.GetName()+"`") {
			t.Errorf("metric %s is not in %s", f.GetName(), doc)
		}
	}
}
