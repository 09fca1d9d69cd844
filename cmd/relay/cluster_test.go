package main

import (
	"context"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/upvest-relay/upvest-relay/broker"
	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/service"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

// TestReplicasOnACluster runs the relay as it runs in production: two
// replicas behind one load balancer on a 3-node JetStream cluster, with
// the emulator delivering through the balancer. It checks that exactly
// one replica keeps exactly one subscription; that packages landing on
// both replicas (a retry served by the other one) store every event once
// in an R3 stream; that stopping the leading replica hands the control
// loop to the other within the lease TTL, which then repairs drift; and
// that losing one NATS node neither fails ingress nor loses or doubles
// an event.
func TestReplicasOnACluster(t *testing.T) {
	t.Parallel()
	if testing.Short() {
		t.Skip("3-node NATS cluster with two relay replicas")
	}
	cluster := brokertest.NewCluster(t, 3)
	emu, err := emulator.New(emulator.WithDelayScale(0.05), emulator.WithBackoffScale(0.05))
	if err != nil {
		t.Fatal(err)
	}
	defer emu.Close()
	tenant, keyFile := newTenant(t, emu)

	lb := &balancer{}
	front := httptest.NewServer(lb)
	defer front.Close()
	env := []string{
		"RELAY_NATS_URL=" + cluster.URL,
		"RELAY_STREAM_REPLICAS=3",
		"RELAY_UPVEST_BASE_URL=" + emu.URL(),
		"RELAY_UPVEST_CLIENT_ID=" + tenant.ClientID,
		"RELAY_UPVEST_CLIENT_SECRET=" + tenant.ClientSecret,
		"RELAY_UPVEST_SIGNING_KEY_FILE=" + keyFile,
		"RELAY_UPVEST_SIGNING_KEY_ID=" + tenant.KeyID,
		"RELAY_WEBHOOK_URL=" + front.URL + "/webhooks/upvest",
		"RELAY_WEBHOOK_DELAY=1s",
		"RELAY_WEBHOOK_MAX_PACKAGE_SIZE=20000", // several packages per deliver
		"RELAY_RECONCILE_INTERVAL=1s",
	}
	// Both replicas start at the same moment against the fresh cluster:
	// their create-or-update calls for the stream and the lease bucket
	// race (nats-server 2.15 can leave both unanswered until they time
	// out), which start-up must ride out.
	wait0 := launchApp(t, testConfig(t, env...))
	wait1 := launchApp(t, testConfig(t, env...))
	a0, stop0 := wait0()
	a1, stop1 := wait1()
	apps, stops := []*service.Service{a0, a1}, []func() error{stop0, stop1}
	lb.set(apps[0].IngressAddr(), apps[1].IngressAddr())

	nc := brokertest.Connect(t, cluster.URL)
	js, err := broker.NewJetStream(nc, brokertest.AckTimeout)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// One leader, one subscription, replicated stream and lease bucket.
	var leader int
	testkit.Eventually(t, service.LeaseTTL, "exactly one replica leads the control loop", func() bool {
		n := 0
		for i, a := range apps {
			if keeperState(t, a).Leader {
				leader, n = i, n+1
			}
		}
		return n == 1
	})
	var webhookID string
	testkit.Eventually(t, 10*time.Second, "one enabled subscription upstream", func() bool {
		hooks := emu.Webhooks(tenant.ClientID)
		if len(hooks) == 1 && hooks[0].Enabled {
			webhookID = hooks[0].ID
			return true
		}
		return false
	})
	for _, name := range []string{"UPVEST", "KV_UPVEST_keeper"} {
		info := streamInfo(t, js, name)
		if got := info.Config.Replicas; got != 3 {
			t.Errorf("stream %s has %d replicas, want 3", name, got)
		}
		if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
			t.Errorf("stream %s cluster info %+v, want a leader and 2 followers", name, info.Cluster)
		}
	}

	// Packages land on both replicas: a retry served by the other one,
	// after the first attempt was answered or while it still runs.
	want := map[string]bool{}
	gen := emulator.NewGenerator(11)
	for i := range 4 {
		events := gen.Batch(4)
		body := packageBody(t, events, webhookID)
		for _, a := range []*service.Service{apps[i%2], apps[(i+1)%2]} {
			if got := post(t, emu, body, a); got != http.StatusOK {
				t.Errorf("package %d on replica %s: %d, want 200", i, a.IngressAddr(), got)
			}
		}
		remember(want, events)
	}
	for i := range 4 {
		events := gen.Batch(4)
		body := packageBody(t, events, webhookID)
		// While the first publish of an id is not yet committed, JetStream
		// answers the second with "duplicate message id is in process";
		// the relay asks again until it gets the duplicate PubAck, so both
		// replicas answer 200 and nothing is stored twice.
		for j, got := range postConcurrently(t, emu, body, apps[0], apps[1]) {
			if got != http.StatusOK {
				t.Errorf("concurrent package %d on replica %d: %d, want 200", i, j, got)
			}
		}
		remember(want, events)
	}
	deliver(ctx, t, emu, tenant.ClientID, webhookID, gen, want, 200)
	checkStream(t, js, want)

	// The leader stops (SIGTERM): the standby takes the lease within its
	// TTL and repairs drift from then on. The balancer keeps sending every
	// other attempt to the stopped replica; Upvest's retries land on the
	// other one.
	if err := stops[leader](); err != nil {
		t.Fatalf("stopping leader replica %d: %v", leader, err)
	}
	standby := apps[1-leader]
	testkit.Eventually(t, service.LeaseTTL, "standby replica takes over the control loop", func() bool {
		return keeperState(t, standby).Leader
	})
	if err := emu.SetWebhookEnabled(webhookID, false); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "new leader re-enables the subscription disabled behind its back", func() bool {
		h, ok := emu.Webhook(webhookID)
		return ok && h.Enabled
	})
	failures := emu.Delivered(webhookID).Failures
	deliver(ctx, t, emu, tenant.ClientID, webhookID, gen, want, 200)
	if got := emu.Delivered(webhookID).Failures; got == failures {
		t.Errorf("no delivery attempt failed on the stopped replica (failures stay %d); want retries landing on the other one", got)
	}

	// One NATS node at a time goes away and comes back: a follower of the
	// stream (the surviving replica's own server when it is one, so the
	// replica reconnects elsewhere too), then the stream leader's node.
	// The R3 stream keeps a quorum, so ingress answers 200 throughout.
	outages := []struct {
		name string
		node func(leader, connected string) int
	}{
		{"stream follower", func(leader, connected string) int {
			if connected != leader {
				return cluster.Index(connected)
			}
			return otherNode(cluster, leader)
		}},
		{"stream leader", func(leader, _ string) int { return cluster.Index(leader) }},
	}
	for _, o := range outages {
		node := o.node(streamInfo(t, js, "UPVEST").Cluster.Leader, standby.Conn().ConnectedServerName())
		name := cluster.Servers()[node].Name()
		restart := cluster.Stop(node)
		for i := range 3 {
			events := gen.Batch(4)
			body := packageBody(t, events, webhookID)
			// The contract allows 503 while JetStream recovers from the
			// node loss; Upvest retries the same package until 200.
			if got := postUntilOK(t, emu, body, standby, 30*time.Second); got != http.StatusOK {
				t.Errorf("package %d with the %s (%s) down: %d, want 200 within 30s of retries", i, o.name, name, got)
			}
			remember(want, events)
		}
		deliver(ctx, t, emu, tenant.ClientID, webhookID, gen, want, 100)
		testkit.Eventually(t, 10*time.Second, "relay ready with the "+o.name+" down", func() bool {
			return getStatus(t, "http://"+standby.AdminAddr()+"/readyz") == http.StatusOK
		})

		restart()
		testkit.Eventually(t, 10*time.Second, name+" back and current on the stream", func() bool {
			info := streamInfo(t, js, "UPVEST")
			if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
				return false
			}
			for _, r := range info.Cluster.Replicas {
				if !r.Current || r.Offline {
					return false
				}
			}
			return true
		})
	}
	checkStream(t, js, want)
	if got := len(emu.Webhooks(tenant.ClientID)); got != 1 {
		t.Errorf("%d subscriptions upstream, want 1", got)
	}
}

// balancer is the load balancer in front of the replicas: round robin,
// no health checks, 502 when the chosen replica does not answer.
type balancer struct {
	mu       sync.Mutex
	backends []string
	next     int
}

func (b *balancer) set(addrs ...string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.backends = addrs
}

func (b *balancer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	b.mu.Lock()
	if len(b.backends) == 0 {
		b.mu.Unlock()
		http.Error(w, "no backends", http.StatusBadGateway)
		return
	}
	addr := b.backends[b.next%len(b.backends)]
	b.next++
	b.mu.Unlock()
	proxy := &httputil.ReverseProxy{
		Rewrite:  func(pr *httputil.ProxyRequest) { pr.SetURL(&url.URL{Scheme: "http", Host: addr}) },
		ErrorLog: log.New(io.Discard, "", 0),
	}
	proxy.ServeHTTP(w, r)
}

// deliver publishes n events upstream and waits until the emulator has
// delivered every event published so far through the balancer.
func deliver(ctx context.Context, t *testing.T, emu *emulator.Server, clientID, webhookID string, gen *emulator.Generator, want map[string]bool, n int) {
	t.Helper()
	before := emu.Delivered(webhookID).Events
	for sent := 0; sent < n; sent += 50 {
		events := gen.Batch(min(50, n-sent))
		if err := emu.Publish(clientID, events...); err != nil {
			t.Fatal(err)
		}
		remember(want, events)
	}
	if err := emu.WaitDelivered(ctx, webhookID, before+n); err != nil {
		t.Fatal(err)
	}
}

func remember(want map[string]bool, events []emulator.Event) {
	for _, e := range events {
		want[e.ID] = true
	}
}

// checkStream fails unless the stream holds exactly the wanted events,
// each once. It reads message by message from the stream leader rather
// than through an ordered consumer (streamIDs): a pull right after an
// ordered consumer's creation on an R3 stream can meet "no responders"
// while the consumer's leader is not yet listening.
func checkStream(t *testing.T, js jetstream.JetStream, want map[string]bool) {
	t.Helper()
	ctx := context.Background()
	s, err := js.Stream(ctx, "UPVEST")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for seq := info.State.FirstSeq; seq > 0 && seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			continue
		}
		if err != nil {
			t.Fatalf("stream message %d: %v", seq, err)
		}
		if m.Subject == "upvest.webhook.test" {
			continue // the keeper's test deliveries, checked by the keeper's own tests
		}
		got[m.Header.Get("ce-id")]++
	}
	for id, n := range got {
		switch {
		case !want[id]:
			t.Errorf("stream holds unexpected event %q (%d times)", id, n)
		case n != 1:
			t.Errorf("event %s stored %d times, want 1", id, n)
		}
	}
	for id := range want {
		if got[id] == 0 {
			t.Errorf("event %s missing from the stream", id)
		}
	}
}

func streamInfo(t *testing.T, js jetstream.JetStream, name string) *jetstream.StreamInfo {
	t.Helper()
	s, err := js.Stream(context.Background(), name)
	if err != nil {
		t.Fatalf("stream %s: %v", name, err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatalf("stream %s info: %v", name, err)
	}
	return info
}

// otherNode returns the first running node not named name.
func otherNode(c *brokertest.Cluster, name string) int {
	for i, s := range c.Servers() {
		if s != nil && s.Name() != name {
			return i
		}
	}
	return -1
}

func getStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}
