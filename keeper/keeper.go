package keeper

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/upvest"
)

// SubscriptionAPI is the part of the Upvest client the keeper uses.
type SubscriptionAPI interface {
	ListWebhooks(ctx context.Context) ([]upvest.Webhook, error)
	CreateWebhook(ctx context.Context, w upvest.WebhookCreate) (upvest.Webhook, error)
	UpdateWebhook(ctx context.Context, id string, u upvest.WebhookUpdate) (upvest.Webhook, error)
}

// Tester is the optional part of the Upvest client that asks Upvest for a
// test delivery (POST /webhooks/{id}/test).
type Tester interface {
	TestWebhook(ctx context.Context, id string) error
}

// Arrivals tells when a package for a webhook reaches the relay, at any of
// its replicas. Watch starts watching for packages of webhookID that arrive
// from now on; the returned channel is closed at the first one. Watching
// ends when ctx ends.
type Arrivals interface {
	Watch(ctx context.Context, webhookID string) (<-chan struct{}, error)
}

// Elector decides whether this replica may reconcile. *Lease implements it.
type Elector interface {
	Try(ctx context.Context) (bool, error)
	Release(ctx context.Context) error
}

// Desired is the subscription the keeper maintains.
type Desired struct {
	URL            string
	Title          string
	Types          []string
	Delay          string
	MaxPackageSize int
}

// State is a snapshot of the keeper for /readyz detail and logs.
type State struct {
	Leader        bool      `json:"leader"`
	WebhookID     string    `json:"webhook_id,omitempty"`
	Enabled       bool      `json:"enabled"`
	InSync        bool      `json:"in_sync"`
	LastReconcile time.Time `json:"last_reconcile,omitzero"`
	LastError     string    `json:"last_error,omitempty"`
	// TestDelivery is "", TestPending, TestArrived or TestMissing: after
	// this replica registered or re-enabled the subscription it asked
	// Upvest for a test delivery (WithTestDelivery) and waits to see it
	// arrive.
	TestDelivery string `json:"test_delivery,omitempty"`
}

// Keeper runs the control loop. Create it with New and run it with Run.
type Keeper struct {
	api      SubscriptionAPI
	want     Desired
	elector  Elector
	interval time.Duration
	renew    time.Duration
	minWait  time.Duration
	log      zerolog.Logger
	reg      prometheus.Registerer
	metrics  *metrics
	testWait time.Duration // 0: no test deliveries
	arrivals Arrivals
	lease    *leaseOptions

	// Owned by the goroutine in Run.
	testArrived <-chan struct{} // closed when the pending test arrived
	testStop    context.CancelFunc

	mu       sync.Mutex
	state    State
	testDue  time.Time // when a pending test delivery counts as missing
	testSent bool      // a test was requested and not yet resolved
}

type leaseOptions struct {
	js       jetstream.JetStream
	bucket   string
	ttl      time.Duration
	replicas int
}

// Option tunes a Keeper.
type Option func(*Keeper)

// WithElector makes the keeper reconcile only while elector says this
// replica leads, checking every renew period (a third of the lease TTL).
// Without it (or WithLease) the keeper always leads.
func WithElector(e Elector, renew time.Duration) Option {
	return func(k *Keeper) { k.elector, k.renew = e, renew }
}

// WithLease makes the keeper reconcile only while it holds a lease in the
// JetStream KV bucket (created with LeaseBucket's rules on first use, so
// the keeper may start before JetStream is reachable), renewed every third
// of ttl. The lease key derives from the desired URL, so every replica
// maintaining that URL competes for it; the holder id is the host name
// plus a random suffix.
func WithLease(js jetstream.JetStream, bucket string, ttl time.Duration, replicas int) Option {
	return func(k *Keeper) {
		k.lease = &leaseOptions{js: js, bucket: bucket, ttl: ttl, replicas: replicas}
	}
}

// WithInterval sets the reconcile period (default 1m). Drift is repaired
// within one interval.
func WithInterval(d time.Duration) Option { return func(k *Keeper) { k.interval = d } }

// WithMinBackoff sets the first back-off after an upstream failure
// (default 1s); it doubles up to the interval, with jitter.
func WithMinBackoff(d time.Duration) Option { return func(k *Keeper) { k.minWait = d } }

// WithLogger sets the logger (default: none).
func WithLogger(l zerolog.Logger) Option { return func(k *Keeper) { k.log = l } }

// WithRegisterer registers the keeper's metrics (relay_keeper_leader,
// relay_subscription_enabled, relay_keeper_reconciles_total,
// relay_keeper_changes_total) on r.
func WithRegisterer(r prometheus.Registerer) Option { return func(k *Keeper) { k.reg = r } }

// WithTestDelivery makes the keeper ask Upvest for a test delivery after
// it created or re-enabled the subscription (when api implements Tester),
// and report whether arrivals saw a package for the subscription within
// wait: "arrived", or a warning that deliveries do not reach the relay (a
// wrong public URL or route). Only the leader asks; any replica's ingress
// may receive the test. The test event's type is not relied on (Upvest
// does not document it): any package for the subscription's webhook id
// that arrives after the test was asked for proves the way in.
func WithTestDelivery(wait time.Duration, arrivals Arrivals) Option {
	return func(k *Keeper) { k.testWait, k.arrivals = wait, arrivals }
}

// ErrInvalid is wrapped by New's errors for arguments that cannot work.
var ErrInvalid = errors.New("keeper: invalid argument")

// New returns a keeper that maintains want through api, or an error
// wrapping ErrInvalid for arguments that cannot work (a missing api or
// URL, a non-positive interval or back-off, a lease TTL outside
// (0, MaxLeaseTTL]), or the registerer's error.
func New(api SubscriptionAPI, want Desired, opts ...Option) (*Keeper, error) {
	k := &Keeper{
		api:      api,
		want:     want,
		interval: time.Minute,
		minWait:  time.Second,
		log:      zerolog.Nop(),
	}
	for _, o := range opts {
		o(k)
	}
	invalid := func(format string, args ...any) (*Keeper, error) {
		return nil, fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
	}
	switch {
	case api == nil:
		return invalid("no subscription API")
	case want.URL == "":
		return invalid("no subscription URL")
	case k.interval <= 0:
		return invalid("interval %s is not positive", k.interval)
	case k.minWait <= 0:
		return invalid("minimum back-off %s is not positive", k.minWait)
	case k.renew < 0:
		return invalid("renew period %s is negative", k.renew)
	case k.testWait < 0:
		return invalid("test delivery wait %s is negative", k.testWait)
	case k.testWait > 0 && k.arrivals == nil:
		return invalid("a test delivery wait needs something that sees arrivals")
	case k.elector != nil && k.lease != nil:
		return invalid("both an elector and a lease")
	}
	if l := k.lease; l != nil {
		if l.js == nil {
			return invalid("lease without JetStream")
		}
		if err := checkTTL(l.ttl); err != nil {
			return invalid("%v", err)
		}
		k.elector = &Lease{
			open: func(ctx context.Context) (jetstream.KeyValue, error) {
				return LeaseBucket(ctx, l.js, l.bucket, l.ttl, l.replicas)
			},
			key:    leaseKey(want.URL),
			holder: holderID(),
		}
		k.renew = l.ttl / 3
	}
	m, err := newMetrics(k.reg)
	if err != nil {
		return nil, err
	}
	k.metrics = m
	if k.renew == 0 || k.renew > k.interval {
		k.renew = k.interval
	}
	return k, nil
}

// State returns a snapshot of the keeper's state.
func (k *Keeper) State() State {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.state
}

// Run reconciles until ctx ends, then releases the lease (never touching
// the subscription) and returns nil. Upstream errors are logged, counted
// and retried with back-off; they never end Run.
func (k *Keeper) Run(ctx context.Context) error {
	var (
		next    time.Time // when the next reconcile is due; zero = now
		backoff time.Duration
		lastErr string
	)
	defer k.release()
	defer k.stopWatching()
	for {
		leader := k.elect(ctx)
		if ctx.Err() != nil {
			return nil
		}
		if !leader {
			next = time.Time{} // reconcile at once when leadership comes
		} else if !time.Now().Before(next) {
			err := k.Reconcile(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if err != nil {
				backoff = k.nextBackoff(backoff)
				wait := backoff
				var apiErr *upvest.APIError
				if errors.As(err, &apiErr) && apiErr.RetryAfter > wait {
					wait = apiErr.RetryAfter
				}
				next = time.Now().Add(wait)
				if msg := err.Error(); msg != lastErr {
					k.log.Warn().Err(err).Int64("retry_in_ms", wait.Milliseconds()).Msg("reconcile failed; backing off")
					lastErr = msg
				}
			} else {
				if lastErr != "" {
					k.log.Info().Msg("reconcile recovered")
				}
				backoff, lastErr = 0, ""
				next = time.Now().Add(jitterDown(k.interval))
			}
		}
		k.checkTestDelivery()
		wait := k.renew
		if leader {
			wait = min(wait, time.Until(next))
		}
		k.mu.Lock()
		if k.testSent {
			wait = min(wait, time.Until(k.testDue))
		}
		k.mu.Unlock()
		t := time.NewTimer(max(wait, 0))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-k.testArrived:
			t.Stop()
			k.testDeliveryArrived()
		case <-t.C:
		}
	}
}

// elect asks the elector whether this replica leads and records changes.
func (k *Keeper) elect(ctx context.Context) bool {
	leader := true
	if k.elector != nil {
		// A JetStream that does not answer must not hold up the loop past
		// the next renewal.
		tctx, cancel := context.WithTimeout(ctx, max(k.renew, time.Second))
		var err error
		leader, err = k.elector.Try(tctx)
		cancel()
		if err != nil && ctx.Err() == nil {
			k.log.Warn().Err(err).Msg("lease check failed; acting as standby")
		}
	}
	k.mu.Lock()
	changed := k.state.Leader != leader
	k.state.Leader = leader
	if !leader {
		k.state.InSync = false
	}
	k.mu.Unlock()
	if changed {
		k.metrics.leader.Set(b2f(leader))
		if leader {
			k.log.Info().Msg("became control-loop leader")
		} else {
			k.log.Info().Msg("standing by: another replica leads the control loop")
		}
	}
	return leader
}

func (k *Keeper) release() {
	if k.elector == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := k.elector.Release(ctx); err != nil {
		k.log.Warn().Err(err).Msg("could not release the control-loop lease; it expires on its own")
	}
	k.metrics.leader.Set(0)
	k.mu.Lock()
	k.state.Leader = false
	k.mu.Unlock()
}

// Reconcile makes one level-triggered pass: list every subscription, then
// create, enable or patch the one for the desired URL so that it matches.
// It is safe to call again after any failure: a subscription created by a
// call whose answer was lost is found by the next listing, never created
// twice.
func (k *Keeper) Reconcile(ctx context.Context) (err error) {
	defer func() { k.record(err) }()
	hooks, err := k.api.ListWebhooks(ctx)
	if err != nil {
		return fmt.Errorf("keeper: list webhooks: %w", err)
	}
	var mine []upvest.Webhook
	for _, h := range hooks {
		if h.URL == k.want.URL {
			mine = append(mine, h)
		}
	}
	var hook upvest.Webhook
	switch {
	case len(mine) == 0:
		hook, err = k.api.CreateWebhook(ctx, upvest.WebhookCreate{
			Title:  k.want.Title,
			URL:    k.want.URL,
			Type:   k.want.Types,
			Config: &upvest.WebhookConfig{Delay: k.want.Delay, MaxPackageSize: k.want.MaxPackageSize},
		})
		if err != nil {
			return fmt.Errorf("keeper: create webhook: %w", err)
		}
		k.metrics.actions.WithLabelValues("create").Inc()
		k.log.Info().Str("webhook_id", hook.ID).Str("url", hook.URL).Msg("subscription created")
	default:
		slices.SortStableFunc(mine, func(a, b upvest.Webhook) int { return a.CreatedAt.Compare(b.CreatedAt) })
		hook = mine[0]
		if len(mine) > 1 {
			k.log.Warn().Int("count", len(mine)).Str("kept", hook.ID).
				Msg("several subscriptions exist for this URL; maintaining the oldest, leaving the others alone")
		}
	}
	k.setHook(hook)

	upd, fields := k.diff(hook)
	if len(fields) == 0 {
		return nil
	}
	id := hook.ID
	hook, err = k.api.UpdateWebhook(ctx, id, upd)
	if err != nil {
		return fmt.Errorf("keeper: update webhook %s (%s): %w", id, strings.Join(fields, ", "), err)
	}
	for _, f := range fields {
		k.metrics.actions.WithLabelValues(f).Inc()
	}
	k.log.Info().Str("webhook_id", hook.ID).Strs("fields", fields).Msg("subscription updated")
	k.setHook(hook)
	if slices.Contains(fields, "enable") {
		k.requestTestDelivery(ctx, hook.ID)
	}
	return nil
}

// requestTestDelivery starts watching for packages of the subscription
// that was just created or re-enabled, then asks Upvest to send it a test
// package. Failing to ask is logged, not an error: the subscription itself
// is in order.
func (k *Keeper) requestTestDelivery(ctx context.Context, id string) {
	t, ok := k.api.(Tester)
	if !ok || k.testWait <= 0 {
		return
	}
	k.stopWatching()
	wctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	arrived, err := k.arrivals.Watch(wctx, id)
	if err != nil {
		stop()
		k.log.Warn().Err(err).Str("webhook_id", id).Msg("cannot watch for a test delivery; not asking for one")
		return
	}
	if err := t.TestWebhook(ctx, id); err != nil {
		stop()
		k.log.Warn().Err(err).Str("webhook_id", id).Msg("could not request a test delivery")
		return
	}
	k.testArrived, k.testStop = arrived, stop
	k.mu.Lock()
	k.state.TestDelivery, k.testSent, k.testDue = TestPending, true, time.Now().Add(k.testWait)
	k.mu.Unlock()
	k.log.Info().Str("webhook_id", id).Int64("wait_ms", k.testWait.Milliseconds()).Msg("test delivery requested")
}

// The values of State.TestDelivery.
const (
	TestPending = "pending"
	TestArrived = "arrived"
	TestMissing = "missing"
)

// stopWatching ends the watch for a pending test delivery, if any.
func (k *Keeper) stopWatching() {
	if k.testStop != nil {
		k.testStop()
	}
	k.testArrived, k.testStop = nil, nil
}

// testDeliveryArrived records that a package of the subscription reached
// the relay after the test was asked for.
func (k *Keeper) testDeliveryArrived() {
	k.stopWatching()
	k.mu.Lock()
	defer k.mu.Unlock()
	if !k.testSent {
		return
	}
	k.testSent = false
	k.state.TestDelivery = TestArrived
	k.log.Info().Str("webhook_id", k.state.WebhookID).Msg("test delivery arrived: Upvest reaches the relay")
}

// checkTestDelivery turns a pending test delivery that is overdue into a
// warning, once.
func (k *Keeper) checkTestDelivery() {
	k.mu.Lock()
	if !k.testSent || time.Now().Before(k.testDue) {
		k.mu.Unlock()
		return
	}
	k.testSent = false
	k.state.TestDelivery = TestMissing
	id := k.state.WebhookID
	k.mu.Unlock()
	k.stopWatching()
	k.log.Warn().Str("webhook_id", id).Int64("waited_ms", k.testWait.Milliseconds()).
		Msg("test delivery did not arrive: check that RELAY_WEBHOOK_URL routes to this relay's ingress")
}

// diff returns the update that makes hook match the desired state and the
// names of the fields it changes ("enable", "title", "type", "config").
func (k *Keeper) diff(hook upvest.Webhook) (upvest.WebhookUpdate, []string) {
	var (
		u      upvest.WebhookUpdate
		fields []string
	)
	if !hook.Enabled {
		enabled := true
		u.Enabled = &enabled
		fields = append(fields, "enable")
	}
	if hook.Title != k.want.Title {
		title := k.want.Title
		u.Title = &title
		fields = append(fields, "title")
	}
	if !sameSet(hook.Type, k.want.Types) {
		u.Type = slices.Clone(k.want.Types)
		fields = append(fields, "type")
	}
	if hook.Config.Delay != k.want.Delay || hook.Config.MaxPackageSize != k.want.MaxPackageSize {
		u.Config = &upvest.WebhookConfig{Delay: k.want.Delay, MaxPackageSize: k.want.MaxPackageSize}
		fields = append(fields, "config")
	}
	return u, fields
}

func (k *Keeper) setHook(h upvest.Webhook) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.state.WebhookID, k.state.Enabled = h.ID, h.Enabled
	k.metrics.enabled.Set(b2f(h.Enabled))
}

func (k *Keeper) record(err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.state.LastReconcile = time.Now()
	if err != nil {
		k.state.LastError, k.state.InSync = err.Error(), false
		k.metrics.reconciles.WithLabelValues("error").Inc()
		return
	}
	k.state.LastError, k.state.InSync = "", true
	k.metrics.reconciles.WithLabelValues("ok").Inc()
}

// nextBackoff doubles prev from the minimum up to the interval, with jitter
// so that replicas and restarts do not hit Upvest in step.
func (k *Keeper) nextBackoff(prev time.Duration) time.Duration {
	d := max(prev*2, k.minWait)
	d = min(d, k.interval)
	return d/2 + rand.N(d/2+1)
}

// jitterDown spreads periodic work over the last tenth of d, never later
// than d.
func jitterDown(d time.Duration) time.Duration {
	return d - rand.N(d/10+1)
}

func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
