// Package deploy holds the deployment files (Helm chart, alert rules,
// Grafana dashboard, NATS values); its tests check them against the relay.
package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/config"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/keeper"
	"github.com/upvest-relay/upvest-relay/service"
	"github.com/upvest-relay/upvest-relay/upvest"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
	"github.com/upvest-relay/upvest-relay/verify"
)

const (
	chartDir    = "helm/upvest-relay"
	dashboard   = chartDir + "/files/dashboard.json"
	rulesFile   = chartDir + "/files/relay-rules.yaml"
	webhookPath = "/webhooks/upvest"
	streamName  = "UPVEST"
)

// targetLabels are added by Prometheus (and the Prometheus Operator) at
// scrape time; queries may select and group by them.
var targetLabels = []string{"namespace", "job", "instance", "pod", "container", "service", "endpoint"}

// TestDashboardAndRulesUseExportedMetrics runs the relay's real handler,
// key source, control loop and admin endpoint against an embedded
// JetStream and the Upvest emulator, lets a few signed deliveries and one
// unsigned request through, reads /metrics over HTTP, and fails for every
// metric (or label) the dashboard or the alert rules name that the relay
// does not export.
func TestDashboardAndRulesUseExportedMetrics(t *testing.T) {
	queries := append(dashboardQueries(t, dashboard), ruleQueries(t, rulesFile)...)
	for i := range queries {
		if err := queries[i].parse(); err != nil {
			t.Fatalf("%s: %s: %v", queries[i].where, queries[i].expr, err)
		}
	}

	families := scrapeRelay(t)

	for _, q := range queries {
		// Labels any part of this query can carry, for its grouping
		// clauses and legend.
		avail := slices.Clone(targetLabels)
		for _, r := range q.refs {
			f, labels, ok := lookup(families, r.metric)
			if !ok {
				t.Errorf("%s: %s is not exported by the relay (query %s)", q.where, r.metric, oneLine(q.expr))
				continue
			}
			avail = append(avail, labels...)
			for _, l := range r.labels {
				if !slices.Contains(labels, l) && !slices.Contains(targetLabels, l) {
					t.Errorf("%s: %s has no label %q (it has %v)", q.where, f, l, labels)
				}
			}
		}
		for _, l := range q.groups {
			if !slices.Contains(avail, l) {
				t.Errorf("%s: groups by %q, which none of its metrics carries (query %s)", q.where, l, oneLine(q.expr))
			}
		}
		for _, m := range legendLabel.FindAllStringSubmatch(q.legend, -1) {
			if !slices.Contains(avail, m[1]) {
				t.Errorf("%s: legend uses {{%s}}, which none of its metrics carries", q.where, m[1])
			}
		}
	}
}

// lookup finds the family that name refers to: the family itself, or a
// histogram's _bucket, _sum or _count series (a summary's _sum, _count).
// It returns the family name and the label names its series carry (with
// "le" for buckets).
func lookup(families map[string]*dto.MetricFamily, name string) (string, []string, bool) {
	if f, ok := families[name]; ok {
		return name, labelNames(f), true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		base, ok := strings.CutSuffix(name, suffix)
		if !ok {
			continue
		}
		f, ok := families[base]
		if !ok {
			continue
		}
		switch t := f.GetType(); {
		case t == dto.MetricType_HISTOGRAM:
			labels := labelNames(f)
			if suffix == "_bucket" {
				labels = append(labels, "le")
			}
			return base, labels, true
		case t == dto.MetricType_SUMMARY && suffix != "_bucket":
			return base, labelNames(f), true
		}
	}
	return "", nil, false
}

func labelNames(f *dto.MetricFamily) []string {
	var names []string
	for _, m := range f.GetMetric() {
		for _, lp := range m.GetLabel() {
			if !slices.Contains(names, lp.GetName()) {
				names = append(names, lp.GetName())
			}
		}
	}
	return names
}

// scrapeRelay runs the relay's service as relay serve does (against an
// external JetStream and the Upvest emulator, control loop on), makes the
// labelled series appear with real traffic, and returns what GET /metrics
// serves, parsed.
func scrapeRelay(t *testing.T) map[string]*dto.MetricFamily {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	srv, _, _ := brokertest.New(t)
	emu, err := emulator.New(emulator.WithDelayScale(0.05), emulator.WithBackoffScale(0.05))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	tenant, err := emu.NewTenant()
	if err != nil {
		t.Fatal(err)
	}
	client, err := upvest.New(emu.URL(), tenant.ClientID, tenant.ClientSecret, tenant.Key, tenant.KeyID,
		upvest.WithTimeout(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	keys, err := verify.NewRemoteKeys(client.VerifyKeysURL(), client.HTTPClient())
	if err != nil {
		t.Fatal(err)
	}
	listen := fmt.Sprintf("127.0.0.1:%d", brokertest.FreePorts(t, 1)[0])
	hookURL := "http://" + listen + webhookPath
	svc, err := service.New(service.Config{
		ListenAddr:    listen,
		AdminAddr:     "127.0.0.1:0",
		WebhookPath:   webhookPath,
		SubjectPrefix: "upvest",
		SourceBase:    emu.URL(),
		MaxBodyBytes:  1 << 20,
		Keys:          keys,
		NATSURL:       srv.ClientURL(),
		Stream: broker.StreamOptions{
			Name: streamName, Prefix: "upvest", MaxAge: time.Hour, Replicas: 1, Duplicates: time.Hour,
		},
		Upvest: client,
		Subscription: keeper.Desired{
			URL: hookURL, Title: "upvest-relay", Types: []string{"ALL"}, Delay: "1s", MaxPackageSize: 1048576,
		},
		ReconcileInterval: time.Second,
	}, zerolog.Nop())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	t.Cleanup(func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("relay: %v", err)
		}
	})
	select {
	case <-svc.Ready():
	case err := <-done:
		t.Fatalf("relay ended: %v", err)
	case <-ctx.Done():
		t.Fatal("relay not ready")
	}

	var hook emulator.Webhook
	testkit.Eventually(t, 10*time.Second, "subscription registered and enabled", func() bool {
		hooks := emu.Webhooks(tenant.ClientID)
		if len(hooks) == 1 && hooks[0].Enabled {
			hook = hooks[0]
			return true
		}
		return false
	})
	const events = 20
	if err := emu.Publish(tenant.ClientID, emulator.NewGenerator(1).Batch(events)...); err != nil {
		t.Fatal(err)
	}
	if err := emu.WaitDelivered(ctx, hook.ID, events); err != nil {
		t.Fatalf("deliveries: %v", err)
	}
	// An unsigned request: a 401 and a rejection reason.
	resp, err := http.Post(hookURL, "application/json", strings.NewReader(`{"payload":[]}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("unsigned POST: %d, want 401", resp.StatusCode)
	}

	resp, err = http.Get("http://" + svc.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %d", resp.StatusCode)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		t.Fatal(err)
	}
	return families
}

// TestChartSetsOnlyKnownVariables: every RELAY_* name in the chart's
// templates and values is one the relay knows (an unknown one stops it at
// start).
func TestChartSetsOnlyKnownVariables(t *testing.T) {
	known := config.Names()
	files, err := filepath.Glob(filepath.Join(chartDir, "templates", "*"))
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join(chartDir, "values.yaml"))
	name := regexp.MustCompile(config.Prefix + `[A-Z0-9_]*[A-Z0-9]`)
	seen := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, n := range name.FindAllString(string(b), -1) {
			seen++
			if !slices.Contains(known, n) {
				t.Errorf("%s: %s is not a relay variable", f, n)
			}
		}
	}
	if seen < 20 {
		t.Errorf("found only %d RELAY_* names in the chart; is %s the chart?", seen, chartDir)
	}
}

// TestStreamJSONIsWhatTheRelayAsksFor: deploy/stream.json, created first
// (at one replica on this one-node server), is left unchanged by the
// relay's own EnsureStream with the chart's default settings.
func TestStreamJSONIsWhatTheRelayAsksFor(t *testing.T) {
	b, err := os.ReadFile("stream.json")
	if err != nil {
		t.Fatal(err)
	}
	var cfg jetstream.StreamConfig
	if err := json.Unmarshal(b, &cfg); err != nil {
		t.Fatalf("stream.json: %v", err)
	}
	if cfg.Replicas != 3 {
		t.Errorf("stream.json: num_replicas %d, want 3 (the chart's config.streamReplicas)", cfg.Replicas)
	}
	cfg.Replicas = 1
	ctx := context.Background()
	_, _, js := brokertest.New(t)
	s, err := js.CreateStream(ctx, cfg)
	if err != nil {
		t.Fatalf("create stream.json: %v", err)
	}
	before := s.CachedInfo().Config
	s, err = broker.EnsureStream(ctx, js, broker.StreamOptions{
		Name: "UPVEST", Prefix: "upvest", MaxAge: 720 * time.Hour, Replicas: 1, Duplicates: 2 * time.Hour,
	})
	if err != nil {
		t.Fatalf("EnsureStream: %v", err)
	}
	after := s.CachedInfo().Config
	if !reflect.DeepEqual(before, after) {
		t.Errorf("the relay changed the stream created from stream.json:\n before %+v\n after  %+v", before, after)
	}
}

// TestRunbookLinksResolve: every alert links to a heading of
// docs/runbook.md (GitHub's anchors: lower case, spaces to dashes,
// punctuation dropped).
func TestRunbookLinksResolve(t *testing.T) {
	b, err := os.ReadFile("../docs/runbook.md")
	if err != nil {
		t.Fatal(err)
	}
	anchors := make(map[string]bool)
	for _, m := range regexp.MustCompile(`(?m)^#{1,6} (.+)$`).FindAllStringSubmatch(string(b), -1) {
		a := strings.ToLower(strings.TrimSpace(m[1]))
		a = regexp.MustCompile(`[^a-z0-9 _-]`).ReplaceAllString(a, "")
		anchors[strings.ReplaceAll(a, " ", "-")] = true
	}
	rules, err := os.ReadFile(rulesFile)
	if err != nil {
		t.Fatal(err)
	}
	links := regexp.MustCompile(`runbook_url: \S*/docs/runbook\.md#(\S+)`).FindAllStringSubmatch(string(rules), -1)
	if n := strings.Count(string(rules), "- alert:"); len(links) != n {
		t.Errorf("%d runbook links for %d alerts", len(links), n)
	}
	for _, l := range links {
		if !anchors[l[1]] {
			t.Errorf("runbook_url #%s: no such heading in docs/runbook.md", l[1])
		}
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
