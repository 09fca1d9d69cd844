package keeper

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	leader     prometheus.Gauge
	enabled    prometheus.Gauge
	reconciles *prometheus.CounterVec
	actions    *prometheus.CounterVec
}

// newMetrics creates the keeper's metrics and registers them on r when r is
// not nil.
func newMetrics(r prometheus.Registerer) (*metrics, error) {
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
		for _, c := range []prometheus.Collector{m.leader, m.enabled, m.reconciles, m.actions} {
			if err := r.Register(c); err != nil {
				return nil, fmt.Errorf("keeper: register metrics: %w", err)
			}
		}
	}
	return m, nil
}

// RegisterIdle registers the keeper's metrics on r at zero, for a relay
// whose control loop is off: dashboards and alerts then see
// relay_keeper_leader and relay_subscription_enabled as 0 rather than
// absent.
func RegisterIdle(r prometheus.Registerer) error {
	_, err := newMetrics(r)
	return err
}
