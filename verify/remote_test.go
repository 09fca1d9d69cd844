package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/elliptic"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/upvest-relay/upvest-relay/internal/testkit"
	"github.com/upvest-relay/upvest-relay/verify"
)

func newRemoteKeys(t *testing.T, url string, client *http.Client, opts ...verify.RemoteOption) *verify.RemoteKeys {
	t.Helper()
	k, err := verify.NewRemoteKeys(url, client, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// TestRemoteKeysRotation: a key rotated in upstream after start is found
// through the one refetch an unknown kid triggers; a second unknown kid
// inside the refetch interval causes no request upstream.
func TestRemoteKeysRotation(t *testing.T) {
	k1, k2, k3 := ecKey(t, elliptic.P521()), ecKey(t, elliptic.P521()), ecKey(t, elliptic.P521())
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{"k1": &k1.PublicKey}))
	keys := newRemoteKeys(t, srv.URL, srv.Client(),
		verify.WithRefreshInterval(time.Hour), verify.WithRefetchInterval(time.Hour))
	runKeys(t, keys)
	testkit.Eventually(t, 10*time.Second, "keys loaded", keys.Ready)
	v := newVerifier(t, keys)
	ctx := context.Background()

	steps := []struct {
		name         string
		key          crypto.Signer
		kid          string
		want         error
		wantRequests int64
	}{
		{name: "known key", key: k1, kid: "k1", wantRequests: 1},
		{name: "rotated-in key, found by the refetch", key: k2, kid: "k2", wantRequests: 2},
		{name: "rotated-in key again, cached", key: k2, kid: "k2", wantRequests: 2},
		{name: "second unknown kid in the window", key: k3, kid: "k3", want: verify.ErrUnknownKey, wantRequests: 2},
		{name: "old key still in the set", key: k1, kid: "k1", wantRequests: 2},
	}
	for i, st := range steps {
		if i == 1 {
			srv.serve(http.StatusOK, jwksJSON(t, map[string]crypto.PublicKey{"k1": &k1.PublicKey, "k2": &k2.PublicKey}))
		}
		r := upvestRequest(t, delivery{key: st.key, kid: st.kid, body: testBody})
		if err := v.Verify(ctx, r, testBody); !errors.Is(err, st.want) {
			t.Errorf("%s: Verify: got %v, want %v", st.name, err, st.want)
		}
		if got := srv.requests.Load(); got != st.wantRequests {
			t.Errorf("%s: JWKS requests: got %d, want %d", st.name, got, st.wantRequests)
		}
	}
}

// TestRemoteKeysUnknownKid: with the key never published, the first miss
// refetches and still answers ErrUnknownKey; the next one does not refetch.
func TestRemoteKeysUnknownKid(t *testing.T) {
	k1 := ecKey(t, elliptic.P256())
	srv := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{"k1": &k1.PublicKey}))
	keys := newRemoteKeys(t, srv.URL, srv.Client(), verify.WithRefetchInterval(time.Hour))
	ctx := context.Background()

	// Without Run, the first lookup loads the set on demand.
	if _, err := keys.Key(ctx, "k1"); err != nil {
		t.Fatalf("Key(k1): got %v, want nil", err)
	}
	for i, kid := range []string{"ghost", "ghost", "other"} {
		if _, err := keys.Key(ctx, kid); !errors.Is(err, verify.ErrUnknownKey) {
			t.Errorf("Key(%s) #%d: got %v, want %v", kid, i, err, verify.ErrUnknownKey)
		}
	}
	if got := srv.requests.Load(); got != 1 {
		// The on-demand load used the one refetch of the window.
		t.Errorf("JWKS requests: got %d, want 1", got)
	}

	// With no rate limit every miss refetches.
	srv2 := newJWKSServer(t, jwksJSON(t, map[string]crypto.PublicKey{"k1": &k1.PublicKey}))
	eager := newRemoteKeys(t, srv2.URL, srv2.Client(), verify.WithRefetchInterval(0))
	for range 3 {
		if _, err := eager.Key(ctx, "ghost"); !errors.Is(err, verify.ErrUnknownKey) {
			t.Errorf("Key(ghost): got %v, want %v", err, verify.ErrUnknownKey)
		}
	}
	if got := srv2.requests.Load(); got != 3 {
		t.Errorf("JWKS requests without rate limit: got %d, want 3", got)
	}
}

// TestRemoteKeysConcurrentMisses: many requests with a freshly rotated kid
// arriving together cause a single fetch, and all of them find the key.
func TestRemoteKeysConcurrentMisses(t *testing.T) {
	k1, k2 := ecKey(t, elliptic.P256()), ecKey(t, elliptic.P256())
	set1 := jwksJSON(t, map[string]crypto.PublicKey{"k1": &k1.PublicKey})
	set2 := jwksJSON(t, map[string]crypto.PublicKey{"k1": &k1.PublicKey, "k2": &k2.PublicKey})
	var requests atomic.Int64
	gate := make(chan struct{})
	var closeGate sync.Once
	release := func() { closeGate.Do(func() { close(gate) }) }
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) == 1 {
			_, _ = w.Write(set1)
			return
		}
		<-gate
		_, _ = w.Write(set2)
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(release)
	keys := newRemoteKeys(t, srv.URL, srv.Client(), verify.WithRefreshInterval(time.Hour))
	runKeys(t, keys)
	testkit.Eventually(t, 10*time.Second, "keys loaded", keys.Ready)

	const n = 32
	errs := make(chan error, n)
	for range n {
		go func() {
			_, err := keys.Key(context.Background(), "k2")
			errs <- err
		}()
	}
	testkit.Eventually(t, 10*time.Second, "the refetch to reach the server", func() bool { return requests.Load() == 2 })
	release()
	for range n {
		if err := <-errs; err != nil {
			t.Errorf("Key(k2): got %v, want nil", err)
		}
	}
	if got := requests.Load(); got != 2 {
		t.Errorf("JWKS requests: got %d, want 2", got)
	}
}

// TestRemoteKeysKeepsLastGoodSet: a failing or bad answer is logged and
// leaves the loaded keys in place.
func TestRemoteKeysKeepsLastGoodSet(t *testing.T) {
	k1 := ecKey(t, elliptic.P521())
	good := jwksJSON(t, map[string]crypto.PublicKey{"k1": &k1.PublicKey})
	tests := []struct {
		name   string
		status int
		body   []byte
	}{
		{name: "server error", status: http.StatusInternalServerError, body: []byte(`{"status":500}`)},
		{name: "throttled", status: http.StatusTooManyRequests},
		{name: "not JSON", status: http.StatusOK, body: []byte("<html>")},
		{name: "empty set", status: http.StatusOK, body: []byte(`{"keys":[]}`)},
		{name: "private key material", status: http.StatusOK, body: []byte(`{"keys":[{"kty":"EC","crv":"P-256","kid":"x","x":"AQ","y":"AQ","d":"AQ"}]}`)},
		{name: "too large", status: http.StatusOK, body: append(append([]byte(`{"keys":[],"pad":"`), bytes.Repeat([]byte("a"), 1<<20)...), `"}`...)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newJWKSServer(t, good)
			var logs testkit.LogBuffer
			keys := newRemoteKeys(t, srv.URL, srv.Client(),
				verify.WithRefetchInterval(0), verify.WithLogger(zerolog.New(&logs)))
			ctx := context.Background()
			if _, err := keys.Key(ctx, "k1"); err != nil {
				t.Fatalf("Key(k1): got %v, want nil", err)
			}
			srv.serve(tt.status, tt.body)

			if _, err := keys.Key(ctx, "ghost"); !errors.Is(err, verify.ErrUnknownKey) {
				t.Errorf("Key(ghost): got %v, want %v", err, verify.ErrUnknownKey)
			}
			if _, err := keys.Key(ctx, "k1"); err != nil {
				t.Errorf("Key(k1) after a failed fetch: got %v, want nil", err)
			}
			if !keys.Ready() {
				t.Error("Ready after a failed fetch: got false, want true")
			}
			if got := logs.String(); !strings.Contains(got, "keeping the last good set") {
				t.Errorf("logs: got %q, want the failure logged", got)
			}
		})
	}
}

// TestRemoteKeysUsesClient: the fetch goes through the injected client (the
// Upvest API client in production), and its credentials stay out of logs.
func TestRemoteKeysUsesClient(t *testing.T) {
	const token = "s3cr3t-token"
	k1 := ecKey(t, elliptic.P521())
	set := jwksJSON(t, map[string]crypto.PublicKey{"k1": &k1.PublicKey})
	var authorised atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "unauthorised", http.StatusUnauthorized)
			return
		}
		authorised.Store(true)
		_, _ = w.Write(set)
	}))
	t.Cleanup(srv.Close)

	var logs testkit.LogBuffer
	plain := newRemoteKeys(t, srv.URL, nil, verify.WithLogger(zerolog.New(&logs)))
	if _, err := plain.Key(context.Background(), "k1"); !errors.Is(err, verify.ErrKeysUnavailable) {
		t.Errorf("Key without credentials: got %v, want %v", err, verify.ErrKeysUnavailable)
	}

	client := &http.Client{Transport: bearer{token: token, next: http.DefaultTransport}}
	keys := newRemoteKeys(t, srv.URL, client, verify.WithLogger(zerolog.New(&logs)))
	if _, err := keys.Key(context.Background(), "k1"); err != nil {
		t.Errorf("Key with credentials: got %v, want nil", err)
	}
	if !authorised.Load() {
		t.Error("the injected client was not used")
	}
	if strings.Contains(logs.String(), token) {
		t.Errorf("logs contain the token: %s", logs.String())
	}
}

type bearer struct {
	token string
	next  http.RoundTripper
}

func (b bearer) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("Authorization", "Bearer "+b.token)
	return b.next.RoundTrip(r)
}

// TestRemoteKeysUnavailable: with no set ever loaded, lookups and Verify
// report ErrKeysUnavailable (retry later), not a verdict on the request.
func TestRemoteKeysUnavailable(t *testing.T) {
	srv := newJWKSServer(t, nil)
	srv.serve(http.StatusServiceUnavailable, nil)
	keys := newRemoteKeys(t, srv.URL, srv.Client(), verify.WithRefreshInterval(time.Hour))
	runKeys(t, keys)
	testkit.Eventually(t, 10*time.Second, "the first fetch", func() bool { return srv.requests.Load() >= 1 })

	if keys.Ready() {
		t.Error("Ready: got true, want false")
	}
	k1 := ecKey(t, elliptic.P521())
	r := upvestRequest(t, delivery{key: k1, kid: "k1", body: testBody})
	err := newVerifier(t, keys).Verify(context.Background(), r, testBody)
	if !errors.Is(err, verify.ErrKeysUnavailable) {
		t.Errorf("Verify: got %v, want %v", err, verify.ErrKeysUnavailable)
	}
	if got := verify.Reason(err); got != "keys_unavailable" {
		t.Errorf("Reason: got %q, want %q", got, "keys_unavailable")
	}
}

// TestRemoteKeysRun: Run retries until the first set loads, then keeps
// refreshing, and returns nil once its context ends.
func TestRemoteKeysRun(t *testing.T) {
	k1 := ecKey(t, elliptic.P256())
	set := jwksJSON(t, map[string]crypto.PublicKey{"k1": &k1.PublicKey})
	var requests atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1) <= 2 {
			http.Error(w, "starting", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write(set)
	}))
	t.Cleanup(srv.Close)
	keys := newRemoteKeys(t, srv.URL, srv.Client(), verify.WithRefreshInterval(10*time.Millisecond))

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- keys.Run(ctx) }()
	testkit.Eventually(t, 10*time.Second, "keys loaded after failures", keys.Ready)
	testkit.Eventually(t, 10*time.Second, "periodic refreshes", func() bool { return requests.Load() >= 6 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

func TestNewRemoteKeys(t *testing.T) {
	tests := []struct {
		name  string
		url   string
		opts  []verify.RemoteOption
		valid bool
	}{
		{name: "defaults", url: "https://sandbox.upvest.co/auth/verify_keys", valid: true},
		{name: "all options", url: "http://127.0.0.1:1/keys", valid: true, opts: []verify.RemoteOption{
			verify.WithRefreshInterval(time.Minute), verify.WithRefetchInterval(0),
			verify.WithFetchTimeout(time.Second), verify.WithLogger(zerolog.Nop()),
		}},
		{name: "relative URL", url: "/auth/verify_keys"},
		{name: "other scheme", url: "file:///etc/keys.json"},
		{name: "unparsable URL", url: "https://[::1"},
		{name: "zero refresh", url: "https://x/", opts: []verify.RemoteOption{verify.WithRefreshInterval(0)}},
		{name: "negative refetch", url: "https://x/", opts: []verify.RemoteOption{verify.WithRefetchInterval(-1)}},
		{name: "zero timeout", url: "https://x/", opts: []verify.RemoteOption{verify.WithFetchTimeout(0)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := verify.NewRemoteKeys(tt.url, nil, tt.opts...)
			if got := err == nil && k != nil; got != tt.valid {
				t.Errorf("NewRemoteKeys: got (%v, %v), want valid=%v", k, err, tt.valid)
			}
		})
	}
}
