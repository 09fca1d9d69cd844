package relay

import (
	"context"
	"errors"
	"maps"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestReadinessCollector: relay_ready{check} follows each check at every
// scrape, and the metric is documented.
func TestReadinessCollector(t *testing.T) {
	a := NewAdmin(prometheus.NewRegistry())
	keys := errors.New("not yet")
	a.AddCheck("nats", func(context.Context) error { return nil })
	a.AddCheck("keys", func(context.Context) error { return keys })
	reg := prometheus.NewRegistry()
	reg.MustRegister(ReadinessCollector(a))

	scrape := func() map[string]float64 {
		t.Helper()
		families, err := reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		got := make(map[string]float64)
		for _, f := range families {
			if f.GetName() != "relay_ready" {
				t.Errorf("unexpected family %s", f.GetName())
				continue
			}
			for _, m := range f.GetMetric() {
				if len(m.GetLabel()) != 1 || m.GetLabel()[0].GetName() != "check" {
					t.Errorf("labels %v, want only check", m.GetLabel())
					continue
				}
				got[m.GetLabel()[0].GetValue()] = m.GetGauge().GetValue()
			}
		}
		return got
	}
	if got, want := scrape(), map[string]float64{"nats": 1, "keys": 0}; !maps.Equal(got, want) {
		t.Errorf("keys failing: relay_ready %v, want %v", got, want)
	}
	keys = nil
	if got, want := scrape(), map[string]float64{"nats": 1, "keys": 1}; !maps.Equal(got, want) {
		t.Errorf("keys loaded: relay_ready %v, want %v", got, want)
	}
	checkDocumented(t, reg, "../docs/metrics.md")
}
