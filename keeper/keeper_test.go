package keeper_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/keeper"
	"github.com/upvest-relay/upvest-relay/upvest"
	"github.com/upvest-relay/upvest-relay/upvest/emulator"
)

const hookURL = "http://127.0.0.1:1/webhooks/upvest"

var want = keeper.Desired{
	URL:            hookURL,
	Title:          "upvest-relay",
	Types:          []string{"ORDER", "EXECUTION"},
	Delay:          "5s",
	MaxPackageSize: 1048576,
}

// upstream is an emulator with one tenant and a real client for it.
type upstream struct {
	emu    *emulator.Server
	tenant emulator.Tenant
	client *upvest.Client
}

func newUpstream(t *testing.T) upstream {
	t.Helper()
	emu, err := emulator.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emu.Close)
	tenant, err := emu.NewTenant()
	if err != nil {
		t.Fatal(err)
	}
	client, err := upvest.New(emu.URL(), tenant.ClientID, tenant.ClientSecret, tenant.Key, tenant.KeyID,
		upvest.WithTimeout(2*time.Second), upvest.WithRetryAfterCap(0))
	if err != nil {
		t.Fatal(err)
	}
	return upstream{emu: emu, tenant: tenant, client: client}
}

// mine returns the tenant's subscriptions for hookURL.
func (u upstream) mine() []emulator.Webhook {
	var out []emulator.Webhook
	for _, w := range u.emu.Webhooks(u.tenant.ClientID) {
		if w.URL == hookURL {
			out = append(out, w)
		}
	}
	return out
}

// matches reports whether exactly one subscription exists for hookURL and
// it is enabled and configured as wanted.
func (u upstream) matches() bool {
	m := u.mine()
	if len(m) != 1 {
		return false
	}
	w := m[0]
	return w.Enabled && w.Title == want.Title && slices.Equal(sorted(w.Type), sorted(want.Types)) &&
		w.Config.Delay == want.Delay && w.Config.MaxPackageSize == want.MaxPackageSize
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

func TestReconcileCreatesThenEnables(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	k := newKeeper(t, u.client, want)
	if err := k.Reconcile(context.Background()); err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if !u.matches() {
		t.Fatalf("after one pass: subscriptions %+v, want one enabled and matching %+v", u.mine(), want)
	}
	st := k.State()
	if st.WebhookID != u.mine()[0].ID || !st.Enabled || !st.InSync {
		t.Errorf("state = %+v", st)
	}
	// A second pass changes nothing.
	before := u.emu.CallCount("PATCH", "/webhooks/{id}") + u.emu.CallCount("POST", "/webhooks")
	if err := k.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if after := u.emu.CallCount("PATCH", "/webhooks/{id}") + u.emu.CallCount("POST", "/webhooks"); after != before {
		t.Errorf("a pass over a matching subscription made %d writes, want 0", after-before)
	}
}

func TestReconcileAdoptsExistingSubscription(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	existing, err := u.emu.CreateWebhook(u.tenant.ClientID, emulator.Webhook{
		Title: "old title", URL: hookURL, Type: []string{"ALL"}, Enabled: false,
		Config: emulator.WebhookConfig{Delay: "1m", MaxPackageSize: 1000},
	})
	if err != nil {
		t.Fatal(err)
	}
	// An unrelated subscription of the same tenant is left alone.
	other, err := u.emu.CreateWebhook(u.tenant.ClientID, emulator.Webhook{
		Title: "other", URL: "https://other.example/hook", Type: []string{"ALL"}, Enabled: false,
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := newKeeper(t, u.client, want).Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if !u.matches() || u.mine()[0].ID != existing.ID {
		t.Fatalf("subscriptions %+v, want %s patched in place", u.mine(), existing.ID)
	}
	if got := u.emu.CallCount("POST", "/webhooks"); got != 0 {
		t.Errorf("created %d subscriptions, want 0", got)
	}
	if w, _ := u.emu.Webhook(other.ID); w.Enabled || w.Title != "other" {
		t.Errorf("unrelated subscription changed: %+v", w)
	}
}

func TestKeeperConvergesAfterDrift(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	k := newKeeper(t, u.client, want, keeper.WithInterval(50*time.Millisecond), keeper.WithMinBackoff(10*time.Millisecond))
	stop := run(t, k)
	defer stop()
	testkit.Eventually(t, 5*time.Second, "subscription registered", u.matches)
	id := u.mine()[0].ID

	drifts := []struct {
		name  string
		drift func() error
	}{
		{"disabled", func() error { return u.emu.SetWebhookEnabled(id, false) }},
		{"title", func() error { return u.emu.EditWebhook(id, func(w *emulator.Webhook) { w.Title = "changed" }) }},
		{"types", func() error { return u.emu.EditWebhook(id, func(w *emulator.Webhook) { w.Type = []string{"USER"} }) }},
		{"config", func() error {
			return u.emu.EditWebhook(id, func(w *emulator.Webhook) { w.Config = emulator.WebhookConfig{Delay: "9m", MaxPackageSize: 100} })
		}},
		{"everything", func() error {
			return u.emu.EditWebhook(id, func(w *emulator.Webhook) {
				w.Enabled, w.Title, w.Type = false, "x", []string{"ALL"}
			})
		}},
	}
	for _, d := range drifts {
		if err := d.drift(); err != nil {
			t.Fatalf("%s: %v", d.name, err)
		}
		if u.matches() {
			t.Fatalf("%s: drift did not take", d.name)
		}
		testkit.Eventually(t, 5*time.Second, "repaired after drift: "+d.name, u.matches)
		if got := u.mine()[0].ID; got != id {
			t.Fatalf("%s: subscription replaced (%s → %s), want patched in place", d.name, id, got)
		}
	}

	if err := u.emu.DeleteWebhookBehindBack(id); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "recreated after delete", func() bool {
		return u.matches() && u.mine()[0].ID != id
	})
	if got := len(u.emu.Webhooks(u.tenant.ClientID)); got != 1 {
		t.Errorf("tenant has %d subscriptions, want 1", got)
	}
}

func TestKeeperRidesOut5xxAnd429Storms(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.emu.InjectFault(emulator.Fault{PathPrefix: "/webhooks", Status: 503, Times: 8})
	u.emu.InjectFault(emulator.Fault{PathPrefix: "/webhooks", Status: 429, RetryAfter: time.Second, Times: 1})
	u.emu.InjectFault(emulator.Fault{PathPrefix: "/webhooks", Status: 500, Times: 4})
	k := newKeeper(t, u.client, want, keeper.WithInterval(200*time.Millisecond), keeper.WithMinBackoff(10*time.Millisecond))
	stop := run(t, k)
	defer stop()
	testkit.Eventually(t, 15*time.Second, "converged after the storm", u.matches)
	if got := len(u.mine()); got != 1 {
		t.Errorf("%d subscriptions for the URL, want 1", got)
	}
	if st := k.State(); st.LastError != "" || !st.InSync {
		// State is recorded after each pass; give the pass in progress time.
		testkit.Eventually(t, 5*time.Second, "state in sync", func() bool { return k.State().InSync })
	}
}

func TestKeeperTimesOutSlowUpstream(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	u.emu.InjectFault(emulator.Fault{Method: "GET", PathPrefix: "/webhooks", Latency: 3 * time.Second, Times: 1})
	k := newKeeper(t, u.client, want)
	err := k.Reconcile(context.Background())
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Reconcile against a stalled upstream: %v, want DeadlineExceeded", err)
	}
	if st := k.State(); st.LastError == "" || st.InSync {
		t.Errorf("state after failure = %+v", st)
	}
	if err := k.Reconcile(context.Background()); err != nil {
		t.Fatalf("second pass: %v", err)
	}
	if !u.matches() {
		t.Errorf("not converged after recovery")
	}
}

// countingAPI passes calls to the real client and counts them, so a test
// can tell which replica talked to Upvest.
type countingAPI struct {
	keeper.SubscriptionAPI
	calls atomic.Int64
}

func (c *countingAPI) ListWebhooks(ctx context.Context) ([]upvest.Webhook, error) {
	c.calls.Add(1)
	return c.SubscriptionAPI.ListWebhooks(ctx)
}

func (c *countingAPI) CreateWebhook(ctx context.Context, w upvest.WebhookCreate) (upvest.Webhook, error) {
	c.calls.Add(1)
	return c.SubscriptionAPI.CreateWebhook(ctx, w)
}

func (c *countingAPI) UpdateWebhook(ctx context.Context, id string, w upvest.WebhookUpdate) (upvest.Webhook, error) {
	c.calls.Add(1)
	return c.SubscriptionAPI.UpdateWebhook(ctx, id, w)
}

// Not parallel: its lease TTL is short, and renewals must not starve.
func TestTwoKeepersOneLeaderAndFailover(t *testing.T) {
	u := newUpstream(t)
	_, _, js := brokertest.New(t)
	ctx := context.Background()
	const ttl = time.Second
	kv, err := keeper.LeaseBucket(ctx, js, "relay_keeper", ttl, 1)
	if err != nil {
		t.Fatal(err)
	}
	newReplica := func(name string) (*keeper.Keeper, *countingAPI) {
		api := &countingAPI{SubscriptionAPI: u.client}
		return newKeeper(t, api, want,
			keeper.WithElector(keeper.NewLease(kv, "leader", name), ttl/4),
			keeper.WithInterval(50*time.Millisecond)), api
	}
	a, apiA := newReplica("a")
	b, apiB := newReplica("b")
	stopA := run(t, a)
	stopB := run(t, b)

	testkit.Eventually(t, 5*time.Second, "one leader", func() bool { return a.State().Leader != b.State().Leader })
	testkit.Eventually(t, 5*time.Second, "subscription registered", u.matches)
	leader, standby, leaderAPI, standbyAPI, stopLeader := a, b, apiA, apiB, stopA
	if b.State().Leader {
		leader, standby, leaderAPI, standbyAPI = b, a, apiB, apiA
		stopLeader = stopB
	}
	// Over several renewals of the lease (its revision in the bucket says
	// how many) the roles hold and the standby stays quiet.
	revision := func() uint64 {
		e, err := kv.Get(ctx, "leader")
		if err != nil {
			return 0
		}
		return e.Revision()
	}
	first := revision()
	testkit.Eventually(t, 10*ttl, "the leader renewed its lease 4 times", func() bool {
		if !leader.State().Leader || standby.State().Leader {
			t.Fatalf("roles changed without a failure: leader %+v standby %+v", leader.State(), standby.State())
		}
		return revision() >= first+4
	})
	if n := standbyAPI.calls.Load(); n != 0 {
		t.Errorf("standby made %d subscription calls, want 0", n)
	}
	if leaderAPI.calls.Load() == 0 {
		t.Errorf("leader made no subscription calls")
	}

	// The leader stops: the standby takes over and keeps repairing drift.
	stopLeader()
	testkit.Eventually(t, 3*ttl, "standby took over", func() bool { return standby.State().Leader })
	id := u.mine()[0].ID
	if err := u.emu.SetWebhookEnabled(id, false); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 5*time.Second, "new leader repairs drift", u.matches)
	if got := len(u.mine()); got != 1 {
		t.Errorf("%d subscriptions, want 1", got)
	}
}

// Not parallel: its lease TTL is short, and renewals must not starve.
func TestLeaseExpiresWhenHolderDies(t *testing.T) {
	_, _, js := brokertest.New(t)
	ctx := context.Background()
	const ttl = time.Second
	kv, err := keeper.LeaseBucket(ctx, js, "lease_expiry", ttl, 1)
	if err != nil {
		t.Fatal(err)
	}
	dead := keeper.NewLease(kv, "leader", "dead")
	if held, err := dead.Try(ctx); err != nil || !held {
		t.Fatalf("first holder: held=%v err=%v", held, err)
	}
	// "dead" never renews nor releases, as a crashed process.
	live := keeper.NewLease(kv, "leader", "live")
	if held, err := live.Try(ctx); err != nil || held {
		t.Fatalf("second holder while the first is alive: held=%v err=%v", held, err)
	}
	start := time.Now()
	testkit.Eventually(t, 4*ttl, "lease taken over after the TTL", func() bool {
		held, err := live.Try(ctx)
		return err == nil && held
	})
	if waited := time.Since(start); waited > 3*ttl {
		t.Errorf("takeover took %s, want about the TTL %s", waited, ttl)
	}
	// The dead holder, should it come back, finds it lost the lease.
	if held, err := dead.Try(ctx); err != nil || held {
		t.Errorf("old holder after takeover: held=%v err=%v", held, err)
	}
}

func TestLeaseBucketRefusesLongTTL(t *testing.T) {
	t.Parallel()
	_, _, js := brokertest.New(t)
	if _, err := keeper.LeaseBucket(context.Background(), js, "x", 16*time.Second, 1); err == nil {
		t.Fatal("LeaseBucket accepted a TTL above 15s")
	}
}

// run starts k.Run and returns an idempotent stop that waits for it.
func run(t *testing.T, k *keeper.Keeper) func() {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("Run: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

// newKeeper is keeper.New, failing the test on an error.
func newKeeper(t *testing.T, api keeper.SubscriptionAPI, want keeper.Desired, opts ...keeper.Option) *keeper.Keeper {
	t.Helper()
	k, err := keeper.New(api, want, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// receiver stands in for the relay's ingress and its keeper.Arrivals: an
// HTTP endpoint that notes the webhook_id of every package it receives and
// tells the watchers of that id.
type receiver struct {
	*httptest.Server
	mu       sync.Mutex
	watchers map[string][]chan struct{}
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{watchers: map[string][]chan struct{}{}}
	r.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var pkg struct {
			Payload []struct {
				WebhookID string `json:"webhook_id"`
			} `json:"payload"`
		}
		if err := json.NewDecoder(req.Body).Decode(&pkg); err != nil || len(pkg.Payload) == 0 {
			return
		}
		r.mu.Lock()
		defer r.mu.Unlock()
		id := pkg.Payload[0].WebhookID
		for _, c := range r.watchers[id] {
			close(c)
		}
		delete(r.watchers, id)
	}))
	t.Cleanup(r.Close)
	return r
}

func (r *receiver) Watch(ctx context.Context, webhookID string) (<-chan struct{}, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := make(chan struct{})
	r.watchers[webhookID] = append(r.watchers[webhookID], c)
	return c, nil
}

func TestTestDeliveryAfterRegistering(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	rcv := newReceiver(t)
	reachable := want
	reachable.URL = rcv.URL + "/webhooks/upvest"
	k := newKeeper(t, u.client, reachable, keeper.WithTestDelivery(5*time.Second, rcv), keeper.WithInterval(time.Minute))
	if got := k.State().TestDelivery; got != "" {
		t.Fatalf("TestDelivery before registering = %q, want empty", got)
	}
	stop := run(t, k)
	testkit.Eventually(t, 5*time.Second, "test delivery reported as arrived", func() bool {
		return k.State().TestDelivery == keeper.TestArrived
	})
	stop()
	if got := u.emu.CallCount("POST", "/webhooks/{id}/test"); got != 1 {
		t.Errorf("test deliveries requested: %d, want 1", got)
	}
	// A pass that changes nothing asks for no further test.
	if err := k.Reconcile(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := u.emu.CallCount("POST", "/webhooks/{id}/test"); got != 1 {
		t.Errorf("test deliveries requested after a quiet pass: %d, want 1", got)
	}
}

func TestTestDeliveryMissingIsReported(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	rcv := newReceiver(t)
	// want's URL points at a closed port: the test package cannot arrive.
	k := newKeeper(t, u.client, want, keeper.WithTestDelivery(200*time.Millisecond, rcv), keeper.WithInterval(time.Minute))
	stop := run(t, k)
	defer stop()
	testkit.Eventually(t, 5*time.Second, "test delivery reported missing", func() bool {
		return k.State().TestDelivery == keeper.TestMissing
	})
}

func TestNewRefusesArgumentsThatCannotWork(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	_, _, js := brokertest.New(t)
	rcv := newReceiver(t)
	noURL := want
	noURL.URL = ""
	tests := []struct {
		name string
		api  keeper.SubscriptionAPI
		want keeper.Desired
		opts []keeper.Option
	}{
		{"no api", nil, want, nil},
		{"no url", u.client, noURL, nil},
		{"zero interval", u.client, want, []keeper.Option{keeper.WithInterval(0)}},
		{"negative interval", u.client, want, []keeper.Option{keeper.WithInterval(-time.Second)}},
		{"zero back-off", u.client, want, []keeper.Option{keeper.WithMinBackoff(0)}},
		{"test wait without arrivals", u.client, want, []keeper.Option{keeper.WithTestDelivery(time.Second, nil)}},
		{"negative test wait", u.client, want, []keeper.Option{keeper.WithTestDelivery(-time.Second, rcv)}},
		{"lease TTL too long", u.client, want, []keeper.Option{keeper.WithLease(js, "b", 16*time.Second, 1)}},
		{"lease without JetStream", u.client, want, []keeper.Option{keeper.WithLease(nil, "b", time.Second, 1)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := keeper.New(tt.api, tt.want, tt.opts...)
			if !errors.Is(err, keeper.ErrInvalid) {
				t.Errorf("New = %v, %v; want an error wrapping ErrInvalid", k, err)
			}
		})
	}
	// A second keeper on one registry is an error, not a panic.
	reg := prometheus.NewRegistry()
	newKeeper(t, u.client, want, keeper.WithRegisterer(reg))
	if _, err := keeper.New(u.client, want, keeper.WithRegisterer(reg)); err == nil {
		t.Error("New registered the same metrics twice without an error")
	}
}

// TestWithLeaseStartsBeforeJetStream: a keeper with WithLease may start
// while NATS is down; it stands by, then leads once JetStream is there,
// creating the bucket itself.
func TestWithLeaseStartsBeforeJetStream(t *testing.T) {
	t.Parallel()
	u := newUpstream(t)
	srv, _, js := brokertest.New(t)
	up := brokertest.Down(t, srv)
	k := newKeeper(t, u.client, want, keeper.WithLease(js, "relay_keeper", time.Second, 1), keeper.WithInterval(50*time.Millisecond))
	run(t, k)
	if k.State().Leader {
		t.Fatal("leader without JetStream")
	}
	up()
	testkit.Eventually(t, 15*time.Second, "leader once JetStream is up", func() bool { return k.State().Leader })
	testkit.Eventually(t, 5*time.Second, "subscription registered", u.matches)
}
