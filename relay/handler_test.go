package relay_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/broker/brokertest"
	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/relay"
	"github.com/upvest-relay/upvest-relay/verify"
)

func TestPublishesEachEventOnceWithItsRawBytes(t *testing.T) {
	f := newFixture(t, acceptAll)
	events := []string{
		event("e1", "ORDER.FILLED"),
		event("e2", "USER_CHECK.PASSED"),
		event("e3", "SPACESHIP.LAUNCHED"),
	}
	r := f.post(pkg(events...))
	if r.status != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", r.status, r.body)
	}
	if r.header.Get(relay.RequestIDHeader) == "" {
		t.Errorf("answer has no %s", relay.RequestIDHeader)
	}
	var summary struct{ Events, Published, Duplicates, Deadlettered int }
	if err := json.Unmarshal(r.body, &summary); err != nil {
		t.Fatalf("summary %q: %v", r.body, err)
	}
	if summary.Events != 3 || summary.Published != 3 || summary.Duplicates != 0 || summary.Deadlettered != 0 {
		t.Errorf("summary = %+v, want 3 events, 3 published", summary)
	}

	msgs := f.stored()
	if len(msgs) != len(events) {
		t.Fatalf("stored %d messages, want %d", len(msgs), len(events))
	}
	wantSubjects := []string{"upvest.order.filled", "upvest.user_check.passed", "upvest.spaceship.launched"}
	for i, m := range msgs {
		if m.Subject != wantSubjects[i] {
			t.Errorf("message %d subject = %q, want %q", i, m.Subject, wantSubjects[i])
		}
		if !bytes.Equal(m.Data, []byte(events[i])) {
			t.Errorf("message %d data = %q, want the event's raw bytes %q", i, m.Data, events[i])
		}
		if got, want := m.Header.Get("Nats-Msg-Id"), fmt.Sprintf("e%d", i+1); got != want {
			t.Errorf("message %d Nats-Msg-Id = %q, want %q", i, got, want)
		}
	}
	for _, c := range []struct {
		family string
		want   float64
	}{{"order", 1}, {"user_check", 1}, {"other", 1}} {
		if got := f.metric("relay_events_published_total", "family", c.family); got != c.want {
			t.Errorf("relay_events_published_total{family=%q} = %v, want %v", c.family, got, c.want)
		}
	}
	if got := f.metric("relay_packages_total", "result", "ok"); got != 1 {
		t.Errorf("relay_packages_total{result=ok} = %v, want 1", got)
	}
	if got := f.metric("relay_package_duration_seconds"); got != 1 {
		t.Errorf("relay_package_duration_seconds count = %v, want 1", got)
	}
	if got := f.metric("relay_publish_duration_seconds"); got != 1 {
		t.Errorf("relay_publish_duration_seconds count = %v, want 1", got)
	}
}

func TestRetryIsDeduplicated(t *testing.T) {
	f := newFixture(t, acceptAll)
	body := pkg(event("r1", "ORDER.FILLED"), event("r2", "ORDER.CANCELLED"), event("r3", "POSITION.UPDATED"))
	for i := range 2 {
		if r := f.post(body); r.status != http.StatusOK {
			t.Fatalf("attempt %d: status = %d (%s), want 200", i+1, r.status, r.body)
		}
	}
	if got := len(f.stored()); got != 3 {
		t.Errorf("stored %d messages after a retry, want each of the 3 events once", got)
	}
	if got := f.metric("relay_events_deduplicated_total"); got != 3 {
		t.Errorf("relay_events_deduplicated_total = %v, want 3", got)
	}
	if got := f.metric("relay_events_published_total", "family", "order"); got != 2 {
		t.Errorf("relay_events_published_total{family=order} = %v, want 2", got)
	}
	if got := f.metric("relay_packages_total", "result", "ok"); got != 2 {
		t.Errorf("relay_packages_total{result=ok} = %v, want 2", got)
	}
}

func TestEmptyPayloadIsOK(t *testing.T) {
	f := newFixture(t, acceptAll)
	if r := f.post([]byte(`{"payload":[]}`)); r.status != http.StatusOK {
		t.Errorf("status = %d (%s), want 200", r.status, r.body)
	}
	if got := len(f.stored()); got != 0 {
		t.Errorf("stored %d messages, want none", got)
	}
}

func TestVerifierErrors(t *testing.T) {
	tests := []struct {
		err        error
		wantStatus int
		wantReason string
	}{
		{verify.ErrNoSignature, http.StatusUnauthorized, "no_signature"},
		{verify.ErrMalformed, http.StatusUnauthorized, "malformed_signature"},
		{verify.ErrMissingComponent, http.StatusUnauthorized, "missing_component"},
		{verify.ErrNoDigest, http.StatusUnauthorized, "no_digest"},
		{verify.ErrDigestMismatch, http.StatusUnauthorized, "digest_mismatch"},
		{verify.ErrUnknownKey, http.StatusUnauthorized, "unknown_key"},
		{verify.ErrBadSignature, http.StatusUnauthorized, "bad_signature"},
		{verify.ErrStale, http.StatusUnauthorized, "stale_signature"},
		{verify.ErrFuture, http.StatusUnauthorized, "future_signature"},
		{fmt.Errorf("wrapped: %w", verify.ErrBadSignature), http.StatusUnauthorized, "bad_signature"},
		{errors.New("something else"), http.StatusUnauthorized, "invalid_signature"},
		{verify.ErrKeysUnavailable, http.StatusServiceUnavailable, "keys_unavailable"},
		{fmt.Errorf("fetch: %w", verify.ErrKeysUnavailable), http.StatusServiceUnavailable, "keys_unavailable"},
	}
	var (
		mu  sync.Mutex
		err error
	)
	f := newFixture(t, verifierFunc(func(context.Context, *http.Request, []byte) error {
		mu.Lock()
		defer mu.Unlock()
		return err
	}))
	const marker = "SECRET-BODY-MARKER"
	body := pkg(event(marker, "ORDER.FILLED"))
	for _, tt := range tests {
		t.Run(tt.err.Error(), func(t *testing.T) {
			mu.Lock()
			err = tt.err
			mu.Unlock()
			before := f.metric("relay_rejections_total", "reason", tt.wantReason)
			r := f.post(body)
			if r.status != tt.wantStatus {
				t.Fatalf("status = %d, want %d", r.status, tt.wantStatus)
			}
			p := decodeProblem(t, r)
			if want := "urn:upvest-relay:problem:" + tt.wantReason; p.Type != want {
				t.Errorf("problem type = %q, want %q", p.Type, want)
			}
			if bytes.Contains(r.body, []byte(marker)) {
				t.Errorf("answer %q echoes the request body", r.body)
			}
			if r.header.Get(relay.RequestIDHeader) == "" {
				t.Errorf("answer has no %s", relay.RequestIDHeader)
			}
			if tt.wantStatus == http.StatusServiceUnavailable && r.header.Get("Retry-After") == "" {
				t.Errorf("503 without Retry-After")
			}
			if got := f.metric("relay_rejections_total", "reason", tt.wantReason) - before; got != 1 {
				t.Errorf("relay_rejections_total{reason=%q} grew by %v, want 1", tt.wantReason, got)
			}
		})
	}
	if got := len(f.stored()); got != 0 {
		t.Errorf("stored %d messages after rejected requests, want none", got)
	}
	if got := f.metric("relay_packages_total", "result", "unauthorized"); got != 11 {
		t.Errorf("relay_packages_total{result=unauthorized} = %v, want 11", got)
	}
}

func TestVerifierSeesRawBodyAndRequest(t *testing.T) {
	body := pkg(event("v1", "ORDER.FILLED"))
	var got []byte
	var gotSig string
	f := newFixture(t, verifierFunc(func(_ context.Context, r *http.Request, b []byte) error {
		got, gotSig = append([]byte(nil), b...), r.Header.Get("Signature")
		return nil
	}))
	req, err := http.NewRequest(http.MethodPost, f.http.URL+webhookPath, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Signature", "sig1=:abc:")
	if r := send(t, req); r.status != http.StatusOK {
		t.Fatalf("status = %d, want 200", r.status)
	}
	if !bytes.Equal(got, body) || gotSig != "sig1=:abc:" {
		t.Errorf("verifier saw body %q and Signature %q, want the raw body and the header", got, gotSig)
	}
}

// dlID is the dead-letter id the contract of deadLetterID gives: the
// package body's digest, and the element's index unless the whole body is
// the dead letter.
func dlID(body []byte, index string) string {
	sum := sha256.Sum256(body)
	id := "dl-" + hex.EncodeToString(sum[:])
	if index != "" {
		id += "-" + index
	}
	return id
}

// The same bad element in two different packages is two dead letters, each
// with its own request id; a retry of either stores nothing new.
func TestDeadLettersOfDifferentPackagesStayApart(t *testing.T) {
	noType := `{"id":"t1","created_at":"2024-05-01T10:00:00Z","object":{},"webhook_id":"w"}`
	first := pkg(event("a1", "ORDER.FILLED"), noType)
	second := pkg(event("b1", "ORDER.NEW"), noType)
	f := newFixture(t, acceptAll)
	reqIDs := map[string]bool{}
	for _, body := range [][]byte{first, second, first, second} {
		r := f.post(body)
		if r.status != http.StatusOK {
			t.Fatalf("status = %d (%s), want 200", r.status, r.body)
		}
		reqIDs[r.header.Get(relay.RequestIDHeader)] = true
	}
	var dead []string
	stored := map[string]bool{}
	for _, m := range f.stored() {
		if m.Subject == "upvest._deadletter" {
			dead = append(dead, m.Header.Get("Nats-Msg-Id"))
			stored[m.Header.Get("Relay-Request-Id")] = true
		}
	}
	want := []string{dlID(first, "1"), dlID(second, "1")}
	if !slices.Equal(dead, want) {
		t.Errorf("dead letters %q, want %q", dead, want)
	}
	if len(stored) != 2 {
		t.Errorf("dead letters carry request ids %v, want the two first attempts' of %v", stored, reqIDs)
	}
}

func TestDeadLetters(t *testing.T) {
	good := event("g1", "ORDER.FILLED")
	noID := `{"created_at":"2024-05-01T10:00:00Z","type":"ORDER.FILLED","object":{},"webhook_id":"w"}`
	numericID := `{"id":42,"type":"ORDER.FILLED"}`
	blankID := `{"id":"  ","type":"ORDER.FILLED"}`
	noType := `{"id":"t1","created_at":"2024-05-01T10:00:00Z","object":{},"webhook_id":"w"}`
	nullType := `{"id":"t2","type":null}`
	notObject := `"just a string"`
	tests := []struct {
		name         string
		body         []byte
		wantDead     []string // raw bytes of each dead letter, in order
		wantReasons  []string
		wantIndexes  []string // "" for a whole body
		wantEvents   int      // events published normally
		wantResult   string
		wantDLCType  string
		wantSummaryN int
	}{
		{"bad json", []byte(`{"payload":[{"id":`), []string{`{"payload":[{"id":`}, []string{"invalid_json"}, []string{""}, 0, "deadletter", "application/octet-stream", 0},
		{"not json at all", []byte("hello"), []string{"hello"}, []string{"invalid_json"}, []string{""}, 0, "deadletter", "application/octet-stream", 0},
		{"no payload", []byte(`{"events":[]}`), []string{`{"events":[]}`}, []string{"no_payload"}, []string{""}, 0, "deadletter", "application/json", 0},
		{"payload key in other case", []byte(`{"Payload":[]}`), []string{`{"Payload":[]}`}, []string{"no_payload"}, []string{""}, 0, "deadletter", "application/json", 0},
		{"top level array", []byte(`[{"id":"x"}]`), []string{`[{"id":"x"}]`}, []string{"no_payload"}, []string{""}, 0, "deadletter", "application/json", 0},
		{"payload not array", []byte(`{"payload":{"id":"x"}}`), []string{`{"payload":{"id":"x"}}`}, []string{"payload_not_array"}, []string{""}, 0, "deadletter", "application/json", 0},
		{"payload null", []byte(`{"payload":null}`), []string{`{"payload":null}`}, []string{"payload_not_array"}, []string{""}, 0, "deadletter", "application/json", 0},
		{"event without id", pkg(good, noID), []string{noID}, []string{"event_missing_id"}, []string{"1"}, 1, "ok", "application/json", 2},
		{"event with numeric id", pkg(numericID, good), []string{numericID}, []string{"event_missing_id"}, []string{"0"}, 1, "ok", "application/json", 2},
		{"event with blank id", pkg(blankID), []string{blankID}, []string{"event_missing_id"}, []string{"0"}, 0, "ok", "application/json", 1},
		{"event without type", pkg(noType, good), []string{noType}, []string{"event_missing_type"}, []string{"0"}, 1, "ok", "application/json", 2},
		{"event with null type", pkg(good, nullType), []string{nullType}, []string{"event_missing_type"}, []string{"1"}, 1, "ok", "application/json", 2},
		{"event not an object", pkg(notObject, good, noType), []string{notObject, noType}, []string{"event_missing_id", "event_missing_type"}, []string{"0", "2"}, 1, "ok", "application/json", 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, acceptAll)
			r := f.post(tt.body)
			if r.status != http.StatusOK {
				t.Fatalf("status = %d (%s), want 200", r.status, r.body)
			}
			reqID := r.header.Get(relay.RequestIDHeader)
			var dead, published int
			for _, m := range f.stored() {
				if m.Subject != "upvest._deadletter" {
					published++
					continue
				}
				if dead >= len(tt.wantDead) {
					t.Fatalf("more dead letters than the %d wanted", len(tt.wantDead))
				}
				want := map[string]string{
					"Relay-Deadletter-Reason": tt.wantReasons[dead],
					"Relay-Deadletter-Index":  tt.wantIndexes[dead],
					"Relay-Request-Id":        reqID,
					"Nats-Msg-Id":             dlID(tt.body, tt.wantIndexes[dead]),
					"ce-id":                   dlID(tt.body, tt.wantIndexes[dead]),
					"ce-specversion":          "1.0",
					"ce-type":                 relay.DeadLetterType,
					"ce-source":               sourceBase + "/webhooks",
					"ce-datacontenttype":      tt.wantDLCType,
					"content-type":            tt.wantDLCType,
				}
				for k, v := range want {
					if got := m.Header.Get(k); got != v {
						t.Errorf("dead letter %d header %s = %q, want %q", dead, k, got, v)
					}
				}
				if !bytes.Equal(m.Data, []byte(tt.wantDead[dead])) {
					t.Errorf("dead letter %d data = %q, want %q", dead, m.Data, tt.wantDead[dead])
				}
				dead++
			}
			if dead != len(tt.wantDead) || published != tt.wantEvents {
				t.Errorf("stored %d dead letters and %d events, want %d and %d", dead, published, len(tt.wantDead), tt.wantEvents)
			}
			if got := f.metric("relay_events_deadlettered_total"); got != float64(len(tt.wantDead)) {
				t.Errorf("relay_events_deadlettered_total = %v, want %d", got, len(tt.wantDead))
			}
			if got := f.metric("relay_packages_total", "result", tt.wantResult); got != 1 {
				t.Errorf("relay_packages_total{result=%q} = %v, want 1", tt.wantResult, got)
			}

			// A retry stores nothing new.
			if r := f.post(tt.body); r.status != http.StatusOK {
				t.Fatalf("retry status = %d, want 200", r.status)
			}
			if got := len(f.stored()); got != dead+published {
				t.Errorf("after retry stored %d messages, want still %d", got, dead+published)
			}
		})
	}
}

func TestBodyTooLarge(t *testing.T) {
	var called atomic.Bool
	f := newFixture(t, verifierFunc(func(context.Context, *http.Request, []byte) error {
		called.Store(true)
		return nil
	}), relay.WithMaxBodyBytes(256))
	big := pkg(event("big", "ORDER.FILLED"), event("big2", "ORDER.FILLED"))
	if len(big) <= 256 {
		t.Fatalf("test body is only %d bytes", len(big))
	}
	for _, c := range []struct {
		name string
		body io.Reader
	}{
		{"content-length", bytes.NewReader(big)},
		{"chunked", io.MultiReader(bytes.NewReader(big))}, // unknown length: sent chunked
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.do(http.MethodPost, webhookPath, c.body)
			if r.status != http.StatusRequestEntityTooLarge {
				t.Fatalf("status = %d, want 413", r.status)
			}
			decodeProblem(t, r)
		})
	}
	if called.Load() {
		t.Errorf("verifier called for an oversized body")
	}
	if got := len(f.stored()); got != 0 {
		t.Errorf("stored %d messages, want none", got)
	}
	if got := f.metric("relay_rejections_total", "reason", "body_too_large"); got != 2 {
		t.Errorf("relay_rejections_total{reason=body_too_large} = %v, want 2", got)
	}
	// Exactly at the limit is fine.
	atLimit := append([]byte(`{"payload":[]}`), bytes.Repeat([]byte(" "), 256-14)...)
	if r := f.post(atLimit); r.status != http.StatusOK {
		t.Errorf("body of exactly the limit: status = %d (%s), want 200", r.status, r.body)
	}
}

func TestMethodAndPath(t *testing.T) {
	f := newFixture(t, acceptAll)
	for _, m := range []string{http.MethodGet, http.MethodPut, http.MethodDelete, http.MethodPatch} {
		r := f.do(m, webhookPath, nil)
		if r.status != http.StatusMethodNotAllowed {
			t.Errorf("%s: status = %d, want 405", m, r.status)
		}
		if got := r.header.Get("Allow"); got != http.MethodPost {
			t.Errorf("%s: Allow = %q, want POST", m, got)
		}
		if r.header.Get(relay.RequestIDHeader) == "" {
			t.Errorf("%s: answer has no %s", m, relay.RequestIDHeader)
		}
		decodeProblem(t, r)
	}
	for _, p := range []string{"/", "/webhooks", "/webhooks/upvest/x", "/metrics"} {
		r := f.do(http.MethodPost, p, bytes.NewReader(pkg(event("p", "ORDER.FILLED"))))
		if r.status != http.StatusNotFound {
			t.Errorf("POST %s: status = %d, want 404", p, r.status)
		}
		decodeProblem(t, r)
	}
	if got := len(f.stored()); got != 0 {
		t.Errorf("stored %d messages, want none", got)
	}
}

// blockingVerifier holds every request in Verify until it receives a
// token from release (or release is closed), telling entered about each.
type blockingVerifier struct {
	entered chan struct{}
	release chan struct{}
}

func newBlockingVerifier() *blockingVerifier {
	return &blockingVerifier{entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (b *blockingVerifier) Verify(ctx context.Context, _ *http.Request, _ []byte) error {
	select {
	case b.entered <- struct{}{}:
	default: // nobody counts these any more
	}
	select {
	case <-b.release:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestInFlightBound: requests being verified hold no publishing slot; a
// verified package whose publish is stalled holds one, and the next
// verified package gets 503 overloaded at once.
func TestInFlightBound(t *testing.T) {
	v := newBlockingVerifier()
	f := newFixture(t, v, relay.WithMaxInFlight(1), relay.WithAckTimeout(5*time.Second))
	results := make(chan response, 2)
	for _, id := range []string{"if1", "if2"} {
		go func() { results <- f.post(pkg(event(id, "ORDER.FILLED"))) }()
	}
	<-v.entered
	<-v.entered // both are being verified at once with a single slot
	for range 2 {
		v.release <- struct{}{}
		if r := <-results; r.status != http.StatusOK {
			t.Errorf("package verified beside another: status = %d (%s), want 200", r.status, r.body)
		}
	}
	close(v.release)

	up := brokertest.Down(t, f.srv)
	defer up()
	testkit.Eventually(t, 10*time.Second, "client notices the outage", func() bool { return !f.nc.IsConnected() })
	// Two verified packages at once while NATS is down: whichever takes the
	// only publishing slot holds it, waiting for PubAcks that cannot come,
	// until its ack timeout (5 s); the other is refused at once.
	for _, id := range []string{"if3", "if4"} {
		go func() { results <- f.post(pkg(event(id, "ORDER.FILLED"))) }()
	}
	var overloaded, stalled int
	for range 2 {
		r := <-results
		switch {
		case r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "":
			t.Errorf("while NATS is down: status = %d (%s), want 503 with Retry-After", r.status, r.body)
		case decodeProblem(t, r).Type == "urn:upvest-relay:problem:overloaded":
			overloaded++
		default:
			stalled++
		}
	}
	if overloaded != 1 || stalled != 1 {
		t.Errorf("%d refused as overloaded and %d stalled by the outage, want 1 and 1", overloaded, stalled)
	}
}

func TestNATSDownThen503ThenRecovery(t *testing.T) {
	f := newFixture(t, acceptAll, relay.WithAckTimeout(500*time.Millisecond))
	body := pkg(event("d1", "ORDER.FILLED"), event("d2", "EXECUTION.CREATED"), event("d3", "USER.CREATED"))
	if r := f.post(pkg(event("d0", "ORDER.FILLED"))); r.status != http.StatusOK {
		t.Fatalf("before the outage: status = %d, want 200", r.status)
	}

	up := brokertest.Down(t, f.srv)
	testkit.Eventually(t, 10*time.Second, "client notices the outage", func() bool { return !f.nc.IsConnected() })
	r := f.post(body)
	if r.status != http.StatusServiceUnavailable {
		t.Fatalf("while NATS is down: status = %d (%s), want 503", r.status, r.body)
	}
	if r.header.Get("Retry-After") == "" {
		t.Errorf("503 without Retry-After")
	}
	if p := decodeProblem(t, r); p.Type != "urn:upvest-relay:problem:publish_failed" {
		t.Errorf("problem type = %q, want ...:publish_failed", p.Type)
	}

	up()
	testkit.Eventually(t, 10*time.Second, "client reconnects", f.nc.IsConnected)
	// Upvest retries until it gets a 200.
	testkit.Eventually(t, 10*time.Second, "a retry is answered 200", func() bool { return f.post(body).status == http.StatusOK })

	msgs := f.stored()
	seen := map[string]int{}
	for _, m := range msgs {
		seen[m.Header.Get("Nats-Msg-Id")]++
	}
	for _, id := range []string{"d0", "d1", "d2", "d3"} {
		if seen[id] != 1 {
			t.Errorf("event %s stored %d times, want exactly once (stored: %v)", id, seen[id], seen)
		}
	}
	if len(msgs) != 4 {
		t.Errorf("stored %d messages, want 4", len(msgs))
	}
	if got := f.metric("relay_packages_total", "result", "unavailable"); got != 1 {
		t.Errorf("relay_packages_total{result=unavailable} = %v, want 1", got)
	}
}

func TestShutdownDrainsInFlightPackages(t *testing.T) {
	v := newBlockingVerifier()
	srv, nc, js := brokertest.New(t)
	_ = srv
	_ = nc
	ensureStream(t, js)
	h, err := relay.NewHandler(webhookPath, v, js)
	if err != nil {
		t.Fatal(err)
	}
	hs := relay.NewServer("127.0.0.1:0", h, zerolog.Nop())
	ln, err := listen()
	if err != nil {
		t.Fatal(err)
	}
	go hs.Serve(ln)

	body := pkg(event("s1", "ORDER.FILLED"), event("s2", "ORDER.FILLED"))
	answered := make(chan response, 1)
	go func() {
		req, _ := http.NewRequest(http.MethodPost, "http://"+ln.Addr().String()+webhookPath, bytes.NewReader(body))
		answered <- send(t, req)
	}()
	<-v.entered

	shutdown := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shutdown <- hs.Shutdown(ctx)
	}()
	select {
	case err := <-shutdown:
		t.Fatalf("Shutdown returned (%v) while a package was in flight", err)
	case <-time.After(100 * time.Millisecond): // must still be waiting; a sleep only bounds the check
	}
	close(v.release)
	if r := <-answered; r.status != http.StatusOK {
		t.Errorf("in-flight package: status = %d, want 200", r.status)
	}
	if err := <-shutdown; err != nil {
		t.Errorf("Shutdown: %v", err)
	}
	if got := len(storedIn(t, js)); got != 2 {
		t.Errorf("stored %d messages after shutdown, want 2", got)
	}
}

func TestLogsCarryRequestIDAndNoSecrets(t *testing.T) {
	var logs testkit.LogBuffer
	f := newFixture(t, verifierFunc(func(context.Context, *http.Request, []byte) error {
		return verify.ErrBadSignature
	}), relay.WithLogger(zerolog.New(&logs)))
	req, err := http.NewRequest(http.MethodPost, f.http.URL+webhookPath, bytes.NewReader(pkg(event("BODY-MARKER", "ORDER.FILLED"))))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Signature", "sig1=:SIGNATURE-MARKER:")
	r := send(t, req)
	if r.status != http.StatusUnauthorized {
		t.Fatalf("status = %d, want 401", r.status)
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 1 {
		t.Fatalf("logged %d lines for one rejected request, want 1: %q", len(lines), lines)
	}
	var line map[string]any
	if err := json.Unmarshal([]byte(lines[0]), &line); err != nil {
		t.Fatalf("log line %q: %v", lines[0], err)
	}
	if got, want := line["req_id"], r.header.Get(relay.RequestIDHeader); got != want {
		t.Errorf("log req_id = %v, want the answer's %s %q", got, relay.RequestIDHeader, want)
	}
	if line["reason"] != "bad_signature" || line["status"] != float64(401) {
		t.Errorf("log line = %v, want reason bad_signature and status 401", line)
	}
	for _, secret := range []string{"BODY-MARKER", "SIGNATURE-MARKER"} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log %q contains %s", logs.String(), secret)
		}
	}
}

func TestNewHandlerRejectsBadOptions(t *testing.T) {
	_, _, js := brokertest.New(t)
	tests := []struct {
		name string
		path string
		v    relay.Verifier
		p    relay.Publisher
		opts []relay.Option
	}{
		{"relative path", "webhooks", acceptAll, js, nil},
		{"no verifier", webhookPath, nil, js, nil},
		{"no publisher", webhookPath, acceptAll, nil, nil},
		{"wildcard prefix", webhookPath, acceptAll, js, []relay.Option{relay.WithPrefix("upvest.>")}},
		{"empty prefix", webhookPath, acceptAll, js, []relay.Option{relay.WithPrefix("")}},
		{"relative source", webhookPath, acceptAll, js, []relay.Option{relay.WithSourceBase("sandbox.upvest.co")}},
		{"zero body", webhookPath, acceptAll, js, []relay.Option{relay.WithMaxBodyBytes(0)}},
		{"zero ack timeout", webhookPath, acceptAll, js, []relay.Option{relay.WithAckTimeout(0)}},
		{"zero in flight", webhookPath, acceptAll, js, []relay.Option{relay.WithMaxInFlight(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := relay.NewHandler(tt.path, tt.v, tt.p, tt.opts...); err == nil {
				t.Errorf("NewHandler error = nil, want an error")
			}
		})
	}
	reg := prometheus.NewRegistry()
	if _, err := relay.NewHandler(webhookPath, acceptAll, js, relay.WithRegisterer(reg)); err != nil {
		t.Fatalf("first handler on a registry: %v", err)
	}
	if _, err := relay.NewHandler(webhookPath, acceptAll, js, relay.WithRegisterer(reg)); err == nil {
		t.Errorf("second handler on the same registry: error = nil, want a registration error")
	}
}

func TestCustomPrefixAndSource(t *testing.T) {
	_, _, js := brokertest.New(t)
	ctx := context.Background()
	if _, err := js.CreateStream(ctx, jetstreamConfig("TENANT", "acme.upvest.>")); err != nil {
		t.Fatal(err)
	}
	h, err := relay.NewHandler(webhookPath, acceptAll, js, relay.WithPrefix("acme.upvest"), relay.WithSourceBase("https://api.upvest.co/"))
	if err != nil {
		t.Fatal(err)
	}
	rec := postRecorder(h, pkg(event("c1", "ORDER.FILLED")))
	if rec.Code != http.StatusOK {
		t.Fatalf("status = %d (%s), want 200", rec.Code, rec.Body)
	}
	s, err := js.Stream(ctx, "TENANT")
	if err != nil {
		t.Fatal(err)
	}
	m, err := s.GetMsg(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	if m.Subject != "acme.upvest.order.filled" {
		t.Errorf("subject = %q, want acme.upvest.order.filled", m.Subject)
	}
	if got, want := m.Header.Get("ce-source"), "https://api.upvest.co/webhooks/b1f0c9a6-9d38-4a4f-bc44-0c8a3b7f0d11"; got != want {
		t.Errorf("ce-source = %q, want %q", got, want)
	}
}
