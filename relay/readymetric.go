package relay

import (
	"context"

	"github.com/prometheus/client_golang/prometheus"
)

// readyDesc describes relay_ready, one series per readiness check.
var readyDesc = prometheus.NewDesc(
	"relay_ready",
	"1 while the readiness check named by check passes (the checks of /readyz), else 0.",
	[]string{"check"}, nil,
)

// ReadinessCollector exports a's readiness checks as the gauge
// relay_ready{check}. It runs the checks at every scrape, as /readyz
// does, each bounded by the admin's check timeout.
func ReadinessCollector(a *Admin) prometheus.Collector { return readiness{a} }

type readiness struct{ admin *Admin }

// Describe implements prometheus.Collector.
func (r readiness) Describe(ch chan<- *prometheus.Desc) { ch <- readyDesc }

// Collect implements prometheus.Collector.
func (r readiness) Collect(ch chan<- prometheus.Metric) {
	for name, st := range r.admin.Ready(context.Background()).Checks {
		v := 0.0
		if st.OK {
			v = 1
		}
		m, err := prometheus.NewConstMetric(readyDesc, prometheus.GaugeValue, v, name)
		if err != nil {
			m = prometheus.NewInvalidMetric(readyDesc, err)
		}
		ch <- m
	}
}
