package relay_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/relay"
)

// summary is the JSON answer to a stored package.
type summary struct{ Events, Published, Duplicates, Deadlettered int }

func decodeSummary(t testing.TB, r response) summary {
	t.Helper()
	var s summary
	if err := json.Unmarshal(r.body, &s); err != nil {
		t.Fatalf("summary %q: %v", r.body, err)
	}
	return s
}

// ids makes n event ids named after the package.
func ids(pkgName string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%04d", pkgName, i)
	}
	return out
}

// pkgOf builds a package of one event per id, with a few event types.
func pkgOf(ids []string) []byte {
	types := []string{"ORDER.NEW", "ORDER.FILLED", "EXECUTION.CREATED", "POSITION.UPDATED"}
	events := make([]string, len(ids))
	for i, id := range ids {
		events[i] = event(id, types[i%len(types)])
	}
	return pkg(events...)
}

func TestPackageStoredInOrder(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			f := newFixture(t, acceptAll, relay.WithBatchPublishing(batched))
			want := map[string][]string{}
			var wg sync.WaitGroup
			for p := range 4 {
				name := fmt.Sprintf("p%d-%v", p, batched)
				want[name] = ids(name, 60)
				body := pkgOf(want[name])
				wg.Go(func() {
					if r := f.post(body); r.status != http.StatusOK {
						t.Errorf("package %s: status %d (%s)", name, r.status, r.body)
					}
				})
			}
			wg.Wait()
			msgs := f.stored()
			if len(msgs) != 4*60 {
				t.Fatalf("stored %d messages, want %d", len(msgs), 4*60)
			}
			relay.CheckOrder(t, msgs, want)
		})
	}
}

// TestRetryOfPartlyStoredPackage: a package whose first events are stored
// (an earlier attempt stored a prefix before failing) is completed by the
// retry, in order and without duplicates.
func TestRetryOfPartlyStoredPackage(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			f := newFixture(t, acceptAll, relay.WithBatchPublishing(batched))
			all := ids("partial", 30)
			if r := f.post(pkgOf(all[:12])); r.status != http.StatusOK {
				t.Fatalf("prefix: status %d (%s)", r.status, r.body)
			}
			r := f.post(pkgOf(all))
			if r.status != http.StatusOK {
				t.Fatalf("retry: status %d (%s)", r.status, r.body)
			}
			s := decodeSummary(t, r)
			if s.Events != 30 || s.Published+s.Duplicates != 30 {
				t.Errorf("retry summary = %+v, want 30 events, published + duplicates = 30", s)
			}
			if !batched && (s.Published != 18 || s.Duplicates != 12) {
				t.Errorf("retry one at a time: summary = %+v, want 18 published and 12 duplicates", s)
			}
			msgs := f.stored()
			if len(msgs) != 30 {
				t.Errorf("stored %d messages, want 30", len(msgs))
			}
			relay.CheckOrder(t, msgs, map[string][]string{"partial": all})

			// The whole package again: everything is a duplicate.
			r = f.post(pkgOf(all))
			if s := decodeSummary(t, r); r.status != http.StatusOK || s.Duplicates != 30 || s.Published != 0 {
				t.Errorf("full retry: status %d summary %+v, want 200 and 30 duplicates", r.status, s)
			}
		})
	}
}

// TestDuplicateIDsInsideOnePackage: Upvest never sends one event twice in
// a package, but if it did the first copy is stored and the second counts
// as a duplicate.
func TestDuplicateIDsInsideOnePackage(t *testing.T) {
	for _, batched := range []bool{true, false} {
		t.Run(fmt.Sprintf("batched=%v", batched), func(t *testing.T) {
			f := newFixture(t, acceptAll, relay.WithBatchPublishing(batched))
			events := []string{event("a", "ORDER.NEW"), event("b", "ORDER.FILLED"), event("a", "ORDER.CANCELLED"), event("c", "ORDER.FILLED")}
			r := f.post(pkg(events...))
			if r.status != http.StatusOK {
				t.Fatalf("status %d (%s)", r.status, r.body)
			}
			if s := decodeSummary(t, r); s != (summary{Events: 4, Published: 3, Duplicates: 1}) {
				t.Errorf("summary = %+v, want 4 events, 3 published, 1 duplicate", s)
			}
			msgs := f.stored()
			var got []string
			for _, m := range msgs {
				got = append(got, m.Header.Get("Nats-Msg-Id")+"@"+m.Subject)
			}
			if want := "a@upvest.order.new b@upvest.order.filled c@upvest.order.filled"; strings.Join(got, " ") != want {
				t.Errorf("stored %v, want %s (the first copy of a)", got, want)
			}
		})
	}
}

// TestPackageOverOneThousandEvents: fast-ingest batches have no size limit
// (atomic batches stop at 1000 messages).
func TestPackageOverOneThousandEvents(t *testing.T) {
	f := newFixture(t, acceptAll)
	all := ids("big", 1500)
	events := make([]string, len(all))
	for i, id := range all {
		events[i] = fmt.Sprintf(`{"id":%q,"type":"ORDER.FILLED","created_at":"2024-05-01T10:00:00Z","object":{"id":"o"},"webhook_id":"w"}`, id)
	}
	r := f.post(pkg(events...))
	if r.status != http.StatusOK {
		t.Fatalf("status %d (%s)", r.status, r.body)
	}
	if s := decodeSummary(t, r); s.Published != 1500 {
		t.Errorf("summary = %+v, want 1500 published", s)
	}
	relay.CheckOrder(t, f.stored(), map[string][]string{"big": all})
}

// TestStreamWithoutBatchesFallsBack: a stream made without allow_batched
// (or a server that predates it) refuses the first batch; the handler
// warns once and stores one message at a time, still in order.
func TestStreamWithoutBatchesFallsBack(t *testing.T) {
	_, _, js := brokertest.New(t)
	if _, err := js.CreateStream(context.Background(), jetstreamConfig(streamName, "upvest.>")); err != nil {
		t.Fatal(err)
	}
	var logs testkit.LogBuffer
	h, err := relay.NewHandler(webhookPath, acceptAll, js, relay.WithLogger(zerolog.New(&logs)))
	if err != nil {
		t.Fatal(err)
	}
	all := ids("plain", 10)
	for i := range 2 {
		rec := postRecorder(h, pkgOf(all))
		if rec.Code != http.StatusOK {
			t.Fatalf("attempt %d: status %d (%s)", i, rec.Code, rec.Body)
		}
	}
	if n := strings.Count(logs.String(), "refuses fast-ingest batches"); n != 1 {
		t.Errorf("warning logged %d times, want once:\n%s", n, logs.String())
	}
	relay.CheckOrder(t, storedIn(t, js), map[string][]string{"plain": all})
}

// TestOrderAcrossLeaderChanges publishes packages from Upvest-like
// senders (one package in flight per webhook, retried until 200) into an
// R3 stream while its leader steps down and its leader's node is stopped
// and restarted, then checks that every package's events are stored once
// and in package order.
func TestOrderAcrossLeaderChanges(t *testing.T) {
	if testing.Short() {
		t.Skip("3-node NATS cluster")
	}
	cluster := brokertest.NewCluster(t, 3)
	nc := brokertest.Connect(t, cluster.URL)
	js, err := broker.NewJetStream(nc, brokertest.AckTimeout)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := broker.EnsureStream(ctx, js, broker.StreamOptions{
		Name: streamName, Prefix: "upvest", MaxAge: time.Hour, Replicas: 3, Duplicates: time.Hour,
	}); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	h, err := relay.NewHandler(webhookPath, acceptAll, js, relay.WithRegisterer(reg), relay.WithAckTimeout(2*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(h)
	defer hs.Close()
	f := &fixture{t: t, nc: nc, js: js, reg: reg, handler: h, http: hs}

	const senders, size = 4, 80
	var (
		mu       sync.Mutex
		want     = map[string][]string{}
		answered int // packages answered 200
	)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for s := range senders {
		wg.Go(func() {
			for p := 0; ; p++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-p%03d", s, p)
				events := ids(name, size)
				mu.Lock()
				want[name] = events
				mu.Unlock()
				body := pkgOf(events)
				deadline := time.Now().Add(60 * time.Second)
				for f.post(body).status != http.StatusOK {
					if time.Now().After(deadline) {
						t.Errorf("sender %d package %d: no 200 within 60 s", s, p)
						return
					}
					time.Sleep(50 * time.Millisecond) // Upvest's back-off, shortened
				}
				mu.Lock()
				answered++
				mu.Unlock()
			}
		})
	}
	// progress waits until a few more packages are answered, so that each
	// disruption meets packages in flight.
	progress := func() {
		mu.Lock()
		from := answered
		mu.Unlock()
		testkit.Eventually(t, 60*time.Second, "packages answered between disruptions", func() bool {
			mu.Lock()
			defer mu.Unlock()
			return answered >= from+2*senders
		})
	}
	leader := func() string {
		var name string
		testkit.Eventually(t, 20*time.Second, "stream has a leader", func() bool {
			ctx, cancel := context.WithTimeout(ctx, time.Second)
			defer cancel()
			s, err := js.Stream(ctx, streamName)
			if err != nil || s.CachedInfo().Cluster == nil {
				return false
			}
			name = s.CachedInfo().Cluster.Leader
			return name != ""
		})
		return name
	}
	stepDown := func() {
		progress()
		if _, err := nc.Request("$JS.API.STREAM.LEADER.STEPDOWN."+streamName, nil, 5*time.Second); err != nil {
			t.Logf("step down: %v", err)
		}
		leader()
	}
	// The leader steps down twice, its node is stopped and restarted, and
	// it steps down once more, each time while packages are in flight.
	stepDown()
	stepDown()
	progress()
	restart := cluster.Stop(cluster.Index(leader()))
	progress()
	restart()
	stepDown()
	progress()
	close(stop)
	wg.Wait()
	t.Logf("%d packages; %v answered 503 on the way", len(want), f.metric("relay_packages_total", "result", "unavailable"))

	msgs := storedIn(t, js)
	if len(msgs) != len(want)*size {
		t.Errorf("stored %d messages, want %d", len(msgs), len(want)*size)
	}
	relay.CheckOrder(t, msgs, want)
}
