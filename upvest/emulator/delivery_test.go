package emulator

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/upvest-relay/upvest-relay/internal/testkit"
)

// enabledWebhook creates an enabled subscription for url.
func enabledWebhook(t *testing.T, s *Server, clientID, url string, mod func(*Webhook)) Webhook {
	t.Helper()
	w := Webhook{Title: "relay", URL: url, Enabled: true, Config: WebhookConfig{Delay: "1s"}}
	if mod != nil {
		mod(&w)
	}
	w, err := s.CreateWebhook(clientID, w)
	if err != nil {
		t.Fatal(err)
	}
	return w
}

func orderEvent(id string, at time.Time, pad int) Event {
	return Event{ID: id, CreatedAt: at, Type: "ORDER.FILLED", Object: map[string]any{
		"id": "0b7e2f8e-2c1e-4c6a-9a3e-5d0f1f3b9a10", "instrument_id": "US0378331005",
		"cash_amount": "198.50", "currency": "EUR", "note": strings.Repeat("x", pad),
	}}
}

// attempts collects DeliveryAttempts from the observer.
type attempts struct {
	mu  sync.Mutex
	all []DeliveryAttempt
}

func (a *attempts) observe(d DeliveryAttempt) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.all = append(a.all, d)
}

func (a *attempts) list() []DeliveryAttempt {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.all)
}

func TestDeliverySignedLikeUpvest(t *testing.T) {
	extra := http.Header{
		"User-Agent": {"Upvest-Webhooks/1.0"},
		"Accept":     {"*/*"},
		"X-Trace-Id": {"abc"},
		"Cf-Ray":     {"r1"},
		"Cookie":     {"a=b"},
	}
	s := newServer(t, WithTimeScale(0.01), WithDeliveryHeaders(extra))
	ten := newTenant(t, s)
	rc := newReceiver(t, nil)
	w := enabledWebhook(t, s, ten.ClientID, rc.url()+"?tenant=a", nil)

	now := time.Now().UTC()
	if err := s.Publish(ten.ClientID, orderEvent("e1", now, 0), orderEvent("e2", now.Add(time.Second), 0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "delivery", func() bool { return s.Delivered(w.ID).Events == 2 })
	got := rc.requests()
	if len(got) != 1 {
		t.Fatalf("%d requests, want 1", len(got))
	}
	rq := got[0]
	if rq.r.Method != http.MethodPost || rq.r.Header.Get("Content-Type") != "application/json" {
		t.Errorf("%s with content-type %q", rq.r.Method, rq.r.Header.Get("Content-Type"))
	}
	comps, kid := verifyDelivery(t, mustJWKS(t, s), rq)
	if kid != s.SigningKeyID() {
		t.Errorf("keyid %s, want %s", kid, s.SigningKeyID())
	}
	headers := slices.Clone(comps[:len(comps)-4])
	slices.Sort(headers)
	if want := []string{"accept", "content-type", "user-agent"}; !slices.Equal(headers, want) {
		t.Errorf("covered headers %v, want %v (x-, cf-, cookie skipped)", headers, want)
	}
	if tail := comps[len(comps)-4:]; !slices.Equal(tail, []string{"@method", "@path", "digest", "@query"}) {
		t.Errorf("covered components end with %v", tail)
	}
	if rq.r.Header.Get("Upvest-Signature-Version") != "" {
		t.Error("a draft-06 webhook carries upvest-signature-version")
	}

	evs := decodePackage(t, rq.body)
	if len(evs) != 2 || evs[0].ID != "e1" || evs[1].ID != "e2" {
		t.Fatalf("package %s", rq.body)
	}
	for _, e := range evs {
		if e.Type != "ORDER.FILLED" || e.WebhookID != w.ID || e.CreatedAt.IsZero() || !json.Valid(e.Object) {
			t.Errorf("event %+v", e)
		}
	}
	if !bytes.HasPrefix(rq.body, []byte(`{"payload":[{"id":"e1","created_at":"`)) {
		t.Errorf("body %s does not start with Upvest's field order", rq.body)
	}
}

// TestDeliveryHeaderOrderRandom: Upvest's signer covers headers in Go map
// order, so the order changes from one signature to the next.
func TestDeliveryHeaderOrderRandom(t *testing.T) {
	s := newServer(t)
	orders := map[string]bool{}
	for range 50 {
		r := httptest.NewRequest(http.MethodPost, "https://relay.example.com/hook", nil)
		for _, h := range []string{"Content-Type", "Accept", "User-Agent", "Upvest-Webhook"} {
			r.Header.Set(h, "v")
		}
		if err := s.SignDelivery(r, []byte(`{"payload":[]}`)); err != nil {
			t.Fatal(err)
		}
		orders[strings.SplitN(r.Header.Get("Signature-Input"), `"@method"`, 2)[0]] = true
	}
	if len(orders) < 2 {
		t.Errorf("50 signatures covered headers in %d order(s), want random order", len(orders))
	}
}

func TestPackagingBySize(t *testing.T) {
	s := newServer(t, WithTimeScale(0.001))
	ten := newTenant(t, s)
	rc := newReceiver(t, nil)
	w := enabledWebhook(t, s, ten.ClientID, rc.url(), func(w *Webhook) { w.Config.MaxPackageSize = 1000 })

	base := time.Now().UTC()
	var evs []Event
	for i := range 11 {
		evs = append(evs, orderEvent(fmt.Sprintf("e%02d", i), base.Add(time.Duration(i)*time.Second), 100+37*i))
	}
	evs = append(evs, orderEvent("z-big", base.Add(time.Hour), 2000))
	if err := s.Publish(ten.ClientID, evs...); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "all events", func() bool { return s.Delivered(w.ID).Events == len(evs) })

	got := rc.requests()
	var ids []string
	for i, rq := range got {
		pe := decodePackage(t, rq.body)
		if len(rq.body) > 1000 && len(pe) != 1 {
			t.Errorf("package %d is %d bytes with %d events", i, len(rq.body), len(pe))
		}
		if i+1 < len(got) {
			// Greedy: the next package's first event did not fit.
			next := decodePackage(t, got[i+1].body)[0]
			raw, _ := json.Marshal(next)
			if len(rq.body)+1+len(raw) <= 1000 {
				t.Errorf("package %d (%d bytes) had room for %s", i, len(rq.body), next.ID)
			}
		}
		for _, e := range pe {
			ids = append(ids, e.ID)
		}
	}
	if last := decodePackage(t, got[len(got)-1].body); len(last) != 1 || last[0].ID != "z-big" || len(got[len(got)-1].body) <= 2000 {
		t.Errorf("oversized event not sent alone: %d events", len(last))
	}
	if !slices.IsSorted(ids) || len(ids) != len(evs) {
		t.Errorf("events delivered %v", ids)
	}
	if len(got) < 4 {
		t.Errorf("%d packages, expected the size limit to cut several", len(got))
	}
}

func TestPackagingByDelay(t *testing.T) {
	const delay = 100 * time.Millisecond // "1s" scaled by 0.1
	s := newServer(t, WithDelayScale(0.1))
	ten := newTenant(t, s)
	rc := newReceiver(t, nil)
	w := enabledWebhook(t, s, ten.ClientID, rc.url(), nil)

	base := time.Now().UTC()
	published := time.Now()
	var first []Event
	for i := range 5 {
		// Newest first: the package must be sorted by created_at.
		first = append(first, orderEvent(fmt.Sprintf("a%d", i), base.Add(-time.Duration(i)*time.Minute), 0))
	}
	if err := s.Publish(ten.ClientID, first...); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "first package", func() bool { return rc.count() == 1 })
	if waited := rc.requests()[0].at.Sub(published); waited < delay {
		t.Errorf("package sent after %v, before the %v collection delay", waited, delay)
	}
	if err := s.Publish(ten.ClientID, orderEvent("b0", base, 0), orderEvent("b1", base, 0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "second package", func() bool { return s.Delivered(w.ID).Events == 7 })

	got := rc.requests()
	if len(got) != 2 {
		t.Fatalf("%d packages, want 2", len(got))
	}
	var ids []string
	var times []time.Time
	for _, e := range decodePackage(t, got[0].body) {
		ids = append(ids, e.ID)
		times = append(times, e.CreatedAt)
	}
	if want := []string{"a4", "a3", "a2", "a1", "a0"}; !slices.Equal(ids, want) {
		t.Errorf("first package %v, want %v (sorted by created_at)", ids, want)
	}
	if !slices.IsSortedFunc(times, time.Time.Compare) {
		t.Errorf("created_at not ascending: %v", times)
	}
	if n := len(decodePackage(t, got[1].body)); n != 2 {
		t.Errorf("second package has %d events, want 2", n)
	}
}

// TestRetryBlocksLaterPackages: a failing package is retried with the same
// bytes and a fresh signature after back-offs 1, 2, 3 (scaled), and the
// next package waits until it succeeds.
func TestRetryBlocksLaterPackages(t *testing.T) {
	const scale = 0.005
	var obs attempts
	s := newServer(t, WithTimeScale(scale), WithDeliveryObserver(obs.observe))
	ten := newTenant(t, s)
	statuses := []int{500, 503, 404}
	now := time.Now().UTC()
	rc := newReceiver(t, func(n int) int {
		if n == 0 {
			// B is published while A is failing.
			if err := s.Publish(ten.ClientID, orderEvent("B", now, 0)); err != nil {
				t.Error(err)
			}
		}
		if n < len(statuses) {
			return statuses[n]
		}
		return 200
	})
	w := enabledWebhook(t, s, ten.ClientID, rc.url(), nil)

	if err := s.Publish(ten.ClientID, orderEvent("A", now, 0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "both delivered", func() bool { return s.Delivered(w.ID).Events == 2 })

	got := rc.requests()
	if len(got) != 5 {
		t.Fatalf("%d requests, want 5", len(got))
	}
	jwks := mustJWKS(t, s)
	sigs := map[string]bool{}
	for i, rq := range got {
		verifyDelivery(t, jwks, rq)
		sigs[rq.r.Header.Get("Signature")] = true
		want := "A"
		if i == 4 {
			want = "B"
		}
		if evs := decodePackage(t, rq.body); len(evs) != 1 || evs[0].ID != want {
			t.Errorf("request %d carried %s, want event %s", i, rq.body, want)
		}
		if i > 0 && i < 4 && !bytes.Equal(rq.body, got[0].body) {
			t.Errorf("retry %d body differs:\n%s\n%s", i, rq.body, got[0].body)
		}
	}
	if len(sigs) != 5 {
		t.Errorf("%d distinct signatures over 5 attempts, want a fresh one each time", len(sigs))
	}

	var backoffs []time.Duration
	for _, a := range obs.list() {
		if !a.Delivered {
			backoffs = append(backoffs, a.Backoff)
		}
	}
	unit := time.Duration(float64(time.Second) * scale)
	if want := []time.Duration{unit, 2 * unit, 3 * unit}; !slices.Equal(backoffs, want) {
		t.Errorf("back-offs %v, want %v", backoffs, want)
	}
	for i := 1; i < 4; i++ {
		if gap := got[i].at.Sub(got[i-1].at); gap < backoffs[i-1] {
			t.Errorf("retry %d after %v, before its back-off %v", i, gap, backoffs[i-1])
		}
	}
	st := s.Delivered(w.ID)
	want := DeliveryStats{Packages: 2, Events: 2, Attempts: 5, Failures: 3, LastStatus: 200}
	if st != want {
		t.Errorf("stats %+v, want %+v", st, want)
	}
}

func TestNoRetryLimit(t *testing.T) {
	const fails = 30
	var obs attempts
	s := newServer(t, WithDelayScale(0.001), WithBackoffScale(0.00001), WithDeliveryObserver(obs.observe))
	ten := newTenant(t, s)
	rc := newReceiver(t, func(n int) int {
		if n < fails {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	})
	w := enabledWebhook(t, s, ten.ClientID, rc.url(), nil)
	if err := s.Publish(ten.ClientID, orderEvent("A", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "delivery after many failures", func() bool { return s.Delivered(w.ID).Events == 1 })

	if st := s.Delivered(w.ID); st.Attempts != fails+1 || st.Failures != fails {
		t.Errorf("stats %+v", st)
	}
	var secs []int
	for _, a := range obs.list() {
		if !a.Delivered {
			secs = append(secs, int(a.Backoff.Seconds()/0.00001+0.5))
		}
	}
	want := []int{1, 2, 3, 5, 8, 13, 21, 34, 55, 89, 144, 233, 377, 600, 600}
	if len(secs) != fails || !slices.Equal(secs[:len(want)], want) || secs[fails-1] != 600 {
		t.Errorf("back-off seconds %v, want %v then 600", secs, want)
	}
	for _, rq := range rc.requests() {
		if !bytes.Equal(rq.body, rc.requests()[0].body) {
			t.Fatal("body changed between retries")
		}
	}
}

func TestTransportErrorsAndURLChange(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String() + "/hook"
	ln.Close()

	s := newServer(t, WithTimeScale(0.001))
	ten := newTenant(t, s)
	rc := newReceiver(t, nil)
	w := enabledWebhook(t, s, ten.ClientID, dead, nil)
	if err := s.Publish(ten.ClientID, orderEvent("A", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "failures", func() bool { return s.Delivered(w.ID).Failures >= 3 })
	if st := s.Delivered(w.ID); st.LastStatus != 0 || st.LastError == "" || st.QueuedPackages != 1 || st.ConsecutiveFailures < 3 {
		t.Errorf("stats after connection refused %+v", st)
	}
	if err := s.EditWebhook(w.ID, func(w *Webhook) { w.URL = rc.url() }); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "delivery at the new URL", func() bool { return s.Delivered(w.ID).Events == 1 })
}

func TestDisabledWebhookHoldsQueue(t *testing.T) {
	s := newServer(t, WithDelayScale(0.001), WithBackoffScale(0.02))
	ten := newTenant(t, s)
	var ok atomic.Bool
	rc := newReceiver(t, func(int) int {
		if ok.Load() {
			return 200
		}
		return 500
	})
	w := enabledWebhook(t, s, ten.ClientID, rc.url(), nil)
	if err := s.Publish(ten.ClientID, orderEvent("A", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "first failure", func() bool { return s.Delivered(w.ID).Failures >= 1 })
	if err := s.SetWebhookEnabled(w.ID, false); err != nil {
		t.Fatal(err)
	}
	// An attempt under way when the webhook was disabled still ends (failing).
	testkit.Eventually(t, 10*time.Second, "no attempt under way", func() bool { return !s.Delivered(w.ID).Sending })
	held := rc.count()
	ok.Store(true)
	if err := s.Publish(ten.ClientID, orderEvent("B", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	if st := s.Delivered(w.ID); st.PendingEvents != 0 || st.QueuedPackages != 1 {
		t.Errorf("disabled webhook was offered an event: %+v", st)
	}
	time.Sleep(100 * time.Millisecond) // five back-offs: nothing may be sent meanwhile
	if n := rc.count(); n != held {
		t.Fatalf("disabled webhook received %d requests while disabled", n-held)
	}
	if err := s.SetWebhookEnabled(w.ID, true); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "held package delivered", func() bool { return s.Delivered(w.ID).Packages == 1 })
	got := rc.requests()
	if evs := decodePackage(t, got[len(got)-1].body); len(evs) != 1 || evs[0].ID != "A" {
		t.Errorf("after re-enabling got %s, want only event A", got[len(got)-1].body)
	}
}

func TestDeleteDropsQueue(t *testing.T) {
	s := newServer(t, WithTimeScale(0.001))
	ten := newTenant(t, s)
	rc := newReceiver(t, func(int) int { return 500 })
	w := enabledWebhook(t, s, ten.ClientID, rc.url(), nil)
	if err := s.Publish(ten.ClientID, orderEvent("A", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "failures", func() bool { return s.Delivered(w.ID).Failures >= 2 })
	if err := s.DeleteWebhookBehindBack(w.ID); err != nil {
		t.Fatal(err)
	}
	if st := s.Delivered(w.ID); st.QueuedPackages != 0 || st.PendingEvents != 0 {
		t.Errorf("queue kept after delete: %+v", st)
	}
	n := rc.count()
	time.Sleep(50 * time.Millisecond) // many back-offs: nothing may be sent
	if got := rc.count(); got > n+1 { // one attempt may have been in flight
		t.Errorf("%d requests after delete", got-n)
	}
	if err := s.Publish(ten.ClientID, orderEvent("B", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
}

func TestTypeFilter(t *testing.T) {
	s := newServer(t, WithTimeScale(0.001))
	ten := newTenant(t, s)
	other := newTenant(t, s)
	rc := newReceiver(t, nil)
	orders := enabledWebhook(t, s, ten.ClientID, rc.url()+"?orders", func(w *Webhook) { w.Type = []string{"ORDER", "USER_CHECK"} })
	all := enabledWebhook(t, s, ten.ClientID, rc.url()+"?all", nil)
	off := enabledWebhook(t, s, ten.ClientID, rc.url()+"?off", func(w *Webhook) { w.Enabled = false })
	foreign := enabledWebhook(t, s, other.ClientID, rc.url()+"?foreign", nil)

	evs := []Event{
		{Type: "ORDER.FILLED", Object: map[string]any{"id": "o"}},
		{Type: "USER.CREATED", Object: map[string]any{"id": "u"}},
		{Type: "USER_CHECK.PASSED", Object: map[string]any{"id": "c"}},
		{Type: "SPACESHIP.LAUNCHED", Object: json.RawMessage(`{"id":"s"}`)},
	}
	if err := s.Publish(ten.ClientID, evs...); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "deliveries", func() bool {
		return s.Delivered(orders.ID).Events == 2 && s.Delivered(all.ID).Events == 4
	})
	for _, id := range []string{off.ID, foreign.ID} {
		if st := s.Delivered(id); st != (DeliveryStats{}) {
			t.Errorf("webhook %s got events: %+v", id, st)
		}
	}
	for _, rq := range rc.requests() {
		if rq.r.URL.RawQuery == "orders" {
			for _, e := range decodePackage(t, rq.body) {
				if e.Type != "ORDER.FILLED" && e.Type != "USER_CHECK.PASSED" {
					t.Errorf("ORDER/USER_CHECK webhook got %s", e.Type)
				}
			}
		}
	}
	if err := s.Publish("nobody", evs...); err == nil {
		t.Error("Publish to an unknown tenant succeeded")
	}
	if err := s.Publish(ten.ClientID, Event{Object: 1}); err == nil {
		t.Error("Publish of an event without type succeeded")
	}
}

func TestKeyRotationDuringDelivery(t *testing.T) {
	s := newServer(t, WithTimeScale(0.001))
	ten := newTenant(t, s)
	rc := newReceiver(t, nil)
	w := enabledWebhook(t, s, ten.ClientID, rc.url(), nil)
	if err := s.Publish(ten.ClientID, orderEvent("A", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "first", func() bool { return s.Delivered(w.ID).Events == 1 })
	newKid, err := s.RotateKey()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Publish(ten.ClientID, orderEvent("B", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	testkit.Eventually(t, 10*time.Second, "second", func() bool { return s.Delivered(w.ID).Events == 2 })
	jwks := mustJWKS(t, s)
	got := rc.requests()
	_, kid1 := verifyDelivery(t, jwks, got[0])
	_, kid2 := verifyDelivery(t, jwks, got[1])
	if kid1 == newKid || kid2 != newKid {
		t.Errorf("kids %s, %s; new key %s", kid1, kid2, newKid)
	}
}

func TestCloseStopsHangingDelivery(t *testing.T) {
	s, err := New(WithTimeScale(0.001))
	if err != nil {
		t.Fatal(err)
	}
	ten, err := s.NewTenant()
	if err != nil {
		t.Fatal(err)
	}
	arrived := make(chan struct{}, 1)
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body) // lets the server notice the client going away
		select {
		case arrived <- struct{}{}:
		default:
		}
		<-r.Context().Done()
	}))
	defer hang.Close()
	enabledWebhook(t, s, ten.ClientID, hang.URL, nil)
	if err := s.Publish(ten.ClientID, orderEvent("A", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
	<-arrived
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not return while a delivery hung")
	}
	s.Close() // idempotent
	if err := s.Publish(ten.ClientID, orderEvent("B", time.Now(), 0)); err != nil {
		t.Fatal(err)
	}
}

func TestPublishEvery(t *testing.T) {
	s := newServer(t, WithTimeScale(0.001))
	ten := newTenant(t, s)
	rc := newReceiver(t, nil)
	w := enabledWebhook(t, s, ten.ClientID, rc.url(), nil)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.PublishEvery(ctx, ten.ClientID, time.Millisecond, NewGenerator(1)) }()
	waitCtx, waitCancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer waitCancel()
	if err := s.WaitDelivered(waitCtx, w.ID, 20); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("PublishEvery: %v", err)
	}
	jwks := mustJWKS(t, s)
	for _, rq := range rc.requests() {
		verifyDelivery(t, jwks, rq)
	}
}
