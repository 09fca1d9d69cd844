package verify_test

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"encoding/json"
	mrand "math/rand/v2"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/upvest-relay/upvest-relay/httpsig"
	"github.com/upvest-relay/upvest-relay/verify"
)

// t0 is the fixed "now" of most tests: requests are signed at t0 and
// verified with a clock reading t0 unless a test says otherwise.
var t0 = time.Unix(1_767_225_600, 0) // 2026-01-01T00:00:00Z

// testBody is a webhook package as Upvest sends it.
var testBody = []byte(`{"payload":[{"id":"7b0c1f4e-3f6e-4c8e-9a51-2f1f6b0d9a11","created_at":"2026-01-01T00:00:00Z","type":"ORDER.FILLED","object":{"id":"d1f2"},"webhook_id":"5e6f"}]}`)

func ecKey(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// jwksJSON serialises public keys by kid as a JWK set, with jwx.
func jwksJSON(t testing.TB, keys map[string]crypto.PublicKey) []byte {
	t.Helper()
	set := jwk.NewSet()
	for kid, pub := range keys {
		k, err := jwk.FromRaw(pub)
		if err != nil {
			t.Fatal(err)
		}
		if err := k.Set(jwk.KeyIDKey, kid); err != nil {
			t.Fatal(err)
		}
		if err := set.AddKey(k); err != nil {
			t.Fatal(err)
		}
	}
	b, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func staticKeys(t testing.TB, keys map[string]crypto.PublicKey) *verify.StaticKeys {
	t.Helper()
	s, err := verify.ParseKeys(jwksJSON(t, keys))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newVerifier(t testing.TB, keys verify.KeySource, opts ...verify.Option) *verify.Verifier {
	t.Helper()
	opts = append([]verify.Option{verify.WithNow(func() time.Time { return t0 })}, opts...)
	v, err := verify.New(keys, opts...)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// delivery describes one webhook request the way Upvest's signer makes it.
type delivery struct {
	key      crypto.Signer
	kid      string
	draft15  bool // quoted base, Content-Digest sha-512, Upvest-Signature-Version: 15
	body     []byte
	created  time.Time     // default t0
	lifetime time.Duration // expires = created + lifetime; default 60 s
	url      string        // default https://relay.example/webhooks/upvest
}

// upvestRequest builds and signs d as Upvest does: every header present is
// covered, lower-cased and in random (map) order, then @method, @path, the
// digest and @query if there is one; params keyid, created, nonce, expires.
func upvestRequest(t testing.TB, d delivery) *http.Request {
	t.Helper()
	if d.url == "" {
		d.url = "https://relay.example/webhooks/upvest"
	}
	r := httptest.NewRequest(http.MethodPost, d.url, bytes.NewReader(d.body))
	sign(t, r, d)
	return r
}

// sign sets Upvest's headers on r and signs it as described by d.
func sign(t testing.TB, r *http.Request, d delivery) {
	t.Helper()
	if d.created.IsZero() {
		d.created = t0
	}
	if d.lifetime == 0 {
		d.lifetime = time.Minute
	}
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("User-Agent", "Upvest-Webhooks/1.0")
	r.Header.Set("Accept", "application/json")
	r.Header.Set("Upvest-Client-Id", "c0ffee")
	comps := []string{"content-type", "user-agent", "accept", "upvest-client-id"}
	mrand.Shuffle(len(comps), func(i, j int) { comps[i], comps[j] = comps[j], comps[i] })
	comps = append(comps, "@method", "@path")
	style := httpsig.Unquoted
	if d.draft15 {
		style = httpsig.Quoted
		r.Header.Set("Content-Digest", httpsig.ContentDigest(d.body))
		comps = append(comps, "content-digest")
	} else {
		r.Header.Set("Digest", httpsig.Digest(d.body))
		comps = append(comps, "digest")
	}
	if r.URL.RawQuery != "" {
		comps = append(comps, "@query")
	}
	s := httpsig.Signer{
		Key:      d.key,
		KeyID:    d.kid,
		Style:    style,
		Lifetime: d.lifetime,
		Now:      func() time.Time { return d.created },
	}
	if err := s.Sign(r, comps); err != nil {
		t.Fatal(err)
	}
	if d.draft15 {
		r.Header.Set("Upvest-Signature-Version", "15")
	}
}

// jwksServer serves a JWK set that tests can swap, counting requests.
type jwksServer struct {
	*httptest.Server
	requests atomic.Int64

	mu     sync.Mutex
	status int
	body   []byte
}

func newJWKSServer(t testing.TB, body []byte) *jwksServer {
	t.Helper()
	s := &jwksServer{status: http.StatusOK, body: body}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.requests.Add(1)
		s.mu.Lock()
		status, body := s.status, s.body
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_, _ = w.Write(body)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) serve(status int, body []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.status, s.body = status, body
}

// runKeys runs k until the test ends and waits for Run to return.
func runKeys(t testing.TB, k *verify.RemoteKeys) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- k.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: got %v, want nil", err)
		}
	})
}
