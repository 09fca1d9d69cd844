package keeper

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	leader     prometheus.Gauge
	enabled    prometheus.Gauge
	reconciles *prometheus.CounterVec
	actions    *prometheus.CounterVec
}

// newMetrics creates the keeper's metrics and registers them on r when r is
// not nil.
func newMetrics(r prometheus.Registerer) *metrics {
	m := &metrics{
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_keeper_leader",
			Help: "1 while this replica holds the control-loop lease and reconciles the subscription.",
		}),
		enabled: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "relay_subscription_enabled",
			Help: "1 when the upstream webhook subscription was last seen enabled by this replica.",
		}),
		reconciles: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_keeper_reconciles_total",
			Help: "Reconcile passes by result (ok, error).",
		}, []string{"result"}),
		actions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_keeper_changes_total",
			Help: "Changes made upstream by kind (create, enable, title, type, config).",
		}, []string{"change"}),
	}
	if r != nil {
		r.MustRegister(m.leader, m.enabled, m.reconciles, m.actions)
	}
	return m
}

// RegisterIdle registers the keeper's metrics on r at zero, for a relay
// whose control loop is off: dashboards and alerts then see
// relay_keeper_leader and relay_subscription_enabled as 0 rather than
// absent.
func RegisterIdle(r prometheus.Registerer) {
	newMetrics(r)
}
