package relay

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upvest-relay/upvest-relay/subjects"
)

// Package results, the values of relay_packages_total{result}.
const (
	resultOK               = "ok"
	resultDeadLetter       = "deadletter"
	resultUnauthorized     = "unauthorized"
	resultTooLarge         = "too_large"
	resultUnavailable      = "unavailable"
	resultOverloaded       = "overloaded"
	resultMethodNotAllowed = "method_not_allowed"
	resultForbidden        = "forbidden"
	resultNotFound         = "not_found"
	resultBadRequest       = "bad_request"
	resultInternal         = "internal"
)

// otherFamily is the family label of event types whose family Upvest has
// not documented (yet); it keeps the label's cardinality bounded.
const otherFamily = "other"

// knownFamilies are Upvest's documented event families, as
// subjects.Family renders them (lower case).
var knownFamilies = func() map[string]bool {
	m := make(map[string]bool)
	for _, f := range subjects.Families() {
		m[subjects.Family(f+".X")] = true
	}
	return m
}()

// familyLabel is family if Upvest documents it, else "other".
func familyLabel(family string) string {
	if knownFamilies[family] {
		return family
	}
	return otherFamily
}

type metrics struct {
	packages        *prometheus.CounterVec
	published       *prometheus.CounterVec
	publishedBy     map[string]prometheus.Counter // published, by every label familyLabel returns
	deduplicated    prometheus.Counter
	deadlettered    prometheus.Counter
	rejections      *prometheus.CounterVec
	packageDuration prometheus.Histogram
	publishDuration prometheus.Histogram
	batchPackages   prometheus.Histogram
}

// newMetrics creates the handler's metrics and registers them on reg
// unless reg is nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		packages: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_packages_total",
			Help: "Webhook requests answered, by result (ok, deadletter, unauthorized, too_large, unavailable, overloaded, method_not_allowed, not_found, bad_request).",
		}, []string{"result"}),
		published: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_events_published_total",
			Help: "Events stored in JetStream for the first time, by event family (undocumented families as \"other\").",
		}, []string{"family"}),
		deduplicated: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_events_deduplicated_total",
			Help: "Messages that were stored already (retried packages; docs/metrics.md says how batches count them).",
		}),
		deadlettered: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "relay_events_deadlettered_total",
			Help: "Bodies or events stored on the dead-letter subject for the first time.",
		}),
		rejections: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "relay_rejections_total",
			Help: "Webhook requests answered with a non-2xx status, by reason.",
		}, []string{"reason"}),
		packageDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_package_duration_seconds",
			Help:    "Time from receiving a webhook request to answering it.",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 15),
		}),
		publishDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_publish_duration_seconds",
			Help:    "Time from the first publish of a package to the last PubAck (or giving up).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 15),
		}),
		batchPackages: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "relay_batch_packages",
			Help:    "Packages sent in one fast-ingest batch: small packages that wait while a batch is in flight share the next one.",
			Buckets: prometheus.ExponentialBuckets(1, 2, 8),
		}),
	}
	m.publishedBy = make(map[string]prometheus.Counter, len(knownFamilies)+1)
	for f := range knownFamilies {
		m.publishedBy[f] = m.published.WithLabelValues(f)
	}
	m.publishedBy[otherFamily] = m.published.WithLabelValues(otherFamily)
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.packages, m.published, m.deduplicated, m.deadlettered,
		m.rejections, m.packageDuration, m.publishDuration, m.batchPackages,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("relay: register metrics: %w", err)
		}
	}
	return m, nil
}
